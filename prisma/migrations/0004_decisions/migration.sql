-- CreateTable
CREATE TABLE "Decision" (
    "id" TEXT NOT NULL,
    "germline" TEXT NOT NULL,
    "policy" TEXT NOT NULL,
    "observationDigest" TEXT NOT NULL,
    "proposal" JSONB,
    "why" TEXT,
    "verdicts" JSONB,
    "outcome" TEXT NOT NULL,
    "reason" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Decision_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Decision_germline_createdAt_idx" ON "Decision"("germline", "createdAt");

-- CreateIndex
CREATE INDEX "Decision_outcome_idx" ON "Decision"("outcome");

