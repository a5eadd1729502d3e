-- AlterTable
ALTER TABLE "UsageCharge" ADD COLUMN     "sponsor" TEXT;

-- CreateTable
CREATE TABLE "Sponsor" (
    "name" TEXT NOT NULL,
    "title" TEXT NOT NULL,
    "ownerId" TEXT NOT NULL,
    "dailyAllowance" BIGINT NOT NULL DEFAULT 0,
    "eligibleDomain" TEXT,
    "expiresAt" TIMESTAMP(3),
    "currency" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Sponsor_pkey" PRIMARY KEY ("name")
);

-- CreateTable
CREATE TABLE "GrantUse" (
    "sponsor" TEXT NOT NULL,
    "handle" TEXT NOT NULL,
    "day" TEXT NOT NULL,
    "held" BIGINT NOT NULL DEFAULT 0,
    "used" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "GrantUse_pkey" PRIMARY KEY ("sponsor","handle","day"),
    CONSTRAINT "GrantUse_not_negative" CHECK ("held" >= 0 AND "used" >= 0)
);

-- CreateIndex
CREATE INDEX "UsageCharge_sponsor_createdAt_idx" ON "UsageCharge"("sponsor", "createdAt");

-- CreateIndex
CREATE INDEX "Sponsor_ownerId_idx" ON "Sponsor"("ownerId");
