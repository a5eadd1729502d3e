-- CreateTable
CREATE TABLE "GatewayUse" (
    "caller" TEXT NOT NULL,
    "repository" TEXT NOT NULL,
    "day" TEXT NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "tokens" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "GatewayUse_pkey" PRIMARY KEY ("caller","repository","day"),
    CONSTRAINT "GatewayUse_not_negative" CHECK ("requests" >= 0 AND "tokens" >= 0)
);

-- CreateIndex
CREATE INDEX "GatewayUse_day_idx" ON "GatewayUse"("day");
