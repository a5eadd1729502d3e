-- CreateTable
CREATE TABLE "ArchivedChild" (
    "germline" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "workflowId" TEXT NOT NULL,
    "purpose" TEXT NOT NULL,
    "allowance" BIGINT NOT NULL,
    "spent" BIGINT,
    "reservationId" TEXT NOT NULL,
    "sequence" INTEGER NOT NULL,
    "state" TEXT NOT NULL,
    "owner" TEXT,
    "reason" TEXT,
    "fundings" JSONB NOT NULL DEFAULT '[]',
    "archivedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ArchivedChild_pkey" PRIMARY KEY ("germline","name")
);

-- CreateIndex
CREATE INDEX "ArchivedChild_germline_sequence_idx" ON "ArchivedChild"("germline", "sequence");

