-- AlterTable
ALTER TABLE "Account" ADD COLUMN     "stripeAccountId" TEXT;

-- CreateTable
CREATE TABLE "Breed" (
    "repository" TEXT NOT NULL,
    "ownerId" TEXT NOT NULL,
    "title" TEXT NOT NULL,
    "price" BIGINT,
    "currency" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Breed_pkey" PRIMARY KEY ("repository")
);

-- CreateTable
CREATE TABLE "Entitlement" (
    "id" TEXT NOT NULL,
    "accountId" TEXT NOT NULL,
    "repository" TEXT NOT NULL,
    "checkoutSessionId" TEXT NOT NULL,
    "amount" BIGINT NOT NULL,
    "fee" BIGINT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Entitlement_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Entitlement_accountId_idx" ON "Entitlement"("accountId");

-- CreateIndex
CREATE UNIQUE INDEX "Account_stripeAccountId_key" ON "Account"("stripeAccountId");

-- AddForeignKey
ALTER TABLE "Breed" ADD CONSTRAINT "Breed_ownerId_fkey" FOREIGN KEY ("ownerId") REFERENCES "Account"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Entitlement" ADD CONSTRAINT "Entitlement_repository_fkey" FOREIGN KEY ("repository") REFERENCES "Breed"("repository") ON DELETE RESTRICT ON UPDATE CASCADE;

