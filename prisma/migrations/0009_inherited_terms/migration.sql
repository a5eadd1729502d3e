-- CreateTable
CREATE TABLE "InheritedTerms" (
    "repository" TEXT NOT NULL,
    "breedRepository" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "InheritedTerms_pkey" PRIMARY KEY ("repository","breedRepository")
);

-- CreateIndex
CREATE INDEX "InheritedTerms_breedRepository_idx" ON "InheritedTerms"("breedRepository");

-- AddForeignKey
ALTER TABLE "InheritedTerms" ADD CONSTRAINT "InheritedTerms_breedRepository_fkey" FOREIGN KEY ("breedRepository") REFERENCES "Breed"("repository") ON DELETE RESTRICT ON UPDATE CASCADE;

