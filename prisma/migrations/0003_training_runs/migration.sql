-- CreateTable
CREATE TABLE "TrainingRun" (
    "id" TEXT NOT NULL,
    "payer" TEXT NOT NULL,
    "runner" TEXT NOT NULL,
    "baseRepository" TEXT,
    "baseReference" TEXT,
    "baseDigest" TEXT,
    "outputRepository" TEXT NOT NULL,
    "outputBranch" TEXT NOT NULL,
    "gpus" INTEGER NOT NULL,
    "gpuType" TEXT,
    "maxCost" BIGINT NOT NULL,
    "ratePerGpuHour" BIGINT NOT NULL,
    "currency" TEXT NOT NULL,
    "maxDurationSeconds" INTEGER NOT NULL,
    "state" TEXT NOT NULL,
    "reservationId" TEXT,
    "gpuSeconds" INTEGER NOT NULL DEFAULT 0,
    "step" INTEGER,
    "lastCheckpoint" TEXT,
    "loss" DOUBLE PRECISION,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "resumedFromStep" INTEGER,
    "runnerState" JSONB,
    "cost" BIGINT,
    "outputDigest" TEXT,
    "metrics" JSONB,
    "error" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "TrainingRun_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "TrainingRun_payer_createdAt_idx" ON "TrainingRun"("payer", "createdAt");

-- CreateIndex
CREATE INDEX "TrainingRun_state_idx" ON "TrainingRun"("state");

