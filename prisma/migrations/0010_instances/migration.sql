-- CreateTable
CREATE TABLE "Instance" (
    "id" TEXT NOT NULL,
    "repository" TEXT NOT NULL,
    "reference" TEXT NOT NULL,
    "digest" TEXT,
    "payer" TEXT NOT NULL,
    "ownerHandle" TEXT,
    "visibility" TEXT NOT NULL,
    "runner" TEXT NOT NULL,
    "gpus" INTEGER NOT NULL,
    "ratePerGpuHour" BIGINT NOT NULL,
    "currency" TEXT NOT NULL,
    "maxCost" BIGINT NOT NULL,
    "idleTimeoutSeconds" INTEGER NOT NULL,
    "maxDurationSeconds" INTEGER NOT NULL,
    "state" TEXT NOT NULL,
    "endpoint" TEXT,
    "cost" BIGINT NOT NULL DEFAULT 0,
    "billedSeconds" INTEGER NOT NULL DEFAULT 0,
    "reason" TEXT,
    "lastRequestAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Instance_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Interaction" (
    "id" TEXT NOT NULL,
    "instanceId" TEXT NOT NULL,
    "digest" TEXT NOT NULL,
    "callerHandle" TEXT,
    "visitorId" TEXT,
    "request" JSONB NOT NULL,
    "completion" TEXT NOT NULL,
    "usage" JSONB,
    "latencyMs" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Interaction_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Instance_visibility_state_idx" ON "Instance"("visibility", "state");

-- CreateIndex
CREATE INDEX "Instance_ownerHandle_createdAt_idx" ON "Instance"("ownerHandle", "createdAt");

-- CreateIndex
CREATE INDEX "Interaction_instanceId_createdAt_idx" ON "Interaction"("instanceId", "createdAt");

