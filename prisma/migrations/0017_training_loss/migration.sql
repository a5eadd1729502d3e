-- CreateTable
CREATE TABLE "TrainingLossPoint" (
    "runId" TEXT NOT NULL,
    "step" INTEGER NOT NULL,
    "loss" DOUBLE PRECISION NOT NULL,
    "recordedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "TrainingLossPoint_pkey" PRIMARY KEY ("runId","step")
);

