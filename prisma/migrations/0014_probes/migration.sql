-- CreateTable
CREATE TABLE "Probe" (
    "id" TEXT NOT NULL,
    "workflowId" TEXT NOT NULL,
    "repository" TEXT NOT NULL,
    "digest" TEXT NOT NULL,
    "suite" TEXT NOT NULL,
    "judge" TEXT NOT NULL,
    "trigger" TEXT NOT NULL,
    "requestedBy" TEXT,
    "state" TEXT NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "reason" TEXT,
    "findings" JSONB,
    "recordingId" TEXT,
    "startedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "Probe_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "Probe_state" CHECK ("state" IN ('running', 'passed', 'flagged', 'error'))
);

-- CreateTable
CREATE TABLE "ImageFlag" (
    "repository" TEXT NOT NULL,
    "digest" TEXT NOT NULL,
    "probeId" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "reason" TEXT NOT NULL,
    "reviewedBy" TEXT,
    "reviewNote" TEXT,
    "reviewedAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ImageFlag_pkey" PRIMARY KEY ("repository","digest"),
    CONSTRAINT "ImageFlag_state" CHECK ("state" IN ('pending', 'confirmed', 'cleared'))
);

-- CreateIndex
CREATE INDEX "Probe_repository_digest_startedAt_idx" ON "Probe"("repository", "digest", "startedAt");

-- CreateIndex
CREATE INDEX "Probe_state_startedAt_idx" ON "Probe"("state", "startedAt");

-- CreateIndex
CREATE INDEX "ImageFlag_state_createdAt_idx" ON "ImageFlag"("state", "createdAt");
