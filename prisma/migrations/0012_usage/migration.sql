-- AlterTable
ALTER TABLE "Breed" ADD COLUMN     "inputPricePerMillion" BIGINT,
ADD COLUMN     "outputPricePerMillion" BIGINT,
ADD COLUMN     "licenceIncludesUse" BOOLEAN NOT NULL DEFAULT true;

-- CreateTable
CREATE TABLE "UsageAllotment" (
    "id" TEXT NOT NULL,
    "payer" TEXT NOT NULL,
    "handle" TEXT NOT NULL,
    "currency" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "reservationId" TEXT,
    "amount" BIGINT NOT NULL DEFAULT 0,
    "used" BIGINT NOT NULL DEFAULT 0,
    "held" BIGINT NOT NULL DEFAULT 0,
    "spent" BIGINT,
    "fee" BIGINT,
    "reason" TEXT,
    "expiresAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "settledAt" TIMESTAMP(3),

    CONSTRAINT "UsageAllotment_pkey" PRIMARY KEY ("id"),
    -- What is charged and held never exceeds what was reserved (millionths of a minor unit).
    CONSTRAINT "UsageAllotment_within_amount" CHECK ("used" >= 0 AND "held" >= 0 AND "used" + "held" <= "amount" * 1000000)
);

-- CreateTable
CREATE TABLE "UsageCharge" (
    "id" TEXT NOT NULL,
    "allotmentId" TEXT,
    "payerHandle" TEXT NOT NULL,
    "caller" TEXT NOT NULL,
    "instanceId" TEXT NOT NULL,
    "repository" TEXT NOT NULL,
    "trainerHandle" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "inputTokens" INTEGER,
    "outputTokens" INTEGER,
    "held" BIGINT NOT NULL DEFAULT 0,
    "amount" BIGINT NOT NULL DEFAULT 0,
    "currency" TEXT NOT NULL,
    "reason" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "UsageCharge_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Earning" (
    "id" TEXT NOT NULL,
    "handle" TEXT NOT NULL,
    "repository" TEXT NOT NULL,
    "allotmentId" TEXT NOT NULL,
    "amount" BIGINT NOT NULL,
    "currency" TEXT NOT NULL,
    "payoutId" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Earning_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "UsageAllotment_handle_createdAt_idx" ON "UsageAllotment"("handle", "createdAt");

-- CreateIndex
CREATE INDEX "UsageAllotment_state_idx" ON "UsageAllotment"("state");

-- One allotment at a time is being opened or metered against per payer (Prisma cannot declare a partial index).
CREATE UNIQUE INDEX "UsageAllotment_one_open_per_payer" ON "UsageAllotment"("payer") WHERE "state" IN ('opening', 'open');

-- CreateIndex
CREATE INDEX "UsageCharge_payerHandle_createdAt_idx" ON "UsageCharge"("payerHandle", "createdAt");

-- CreateIndex
CREATE INDEX "UsageCharge_allotmentId_state_idx" ON "UsageCharge"("allotmentId", "state");

-- CreateIndex
CREATE INDEX "UsageCharge_trainerHandle_createdAt_idx" ON "UsageCharge"("trainerHandle", "createdAt");

-- CreateIndex
CREATE INDEX "Earning_handle_payoutId_idx" ON "Earning"("handle", "payoutId");
