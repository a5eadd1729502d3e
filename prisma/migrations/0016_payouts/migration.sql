-- CreateTable
CREATE TABLE "Payout" (
    "id" TEXT NOT NULL,
    "handle" TEXT NOT NULL,
    "stripeAccountId" TEXT NOT NULL,
    "amount" BIGINT NOT NULL,
    "currency" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "transferId" TEXT,
    "error" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "paidAt" TIMESTAMP(3),

    CONSTRAINT "Payout_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Payout_handle_createdAt_idx" ON "Payout"("handle", "createdAt");

-- CreateIndex
CREATE INDEX "Payout_state_idx" ON "Payout"("state");
