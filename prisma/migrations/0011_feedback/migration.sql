-- AlterTable
ALTER TABLE "TrainingRun" ADD COLUMN     "datasets" JSONB;

-- CreateTable
CREATE TABLE "Feedback" (
    "id" TEXT NOT NULL,
    "interactionId" TEXT NOT NULL,
    "author" TEXT NOT NULL,
    "authorHandle" TEXT,
    "visitorId" TEXT,
    "label" TEXT NOT NULL,
    "correction" TEXT,
    "comment" TEXT,
    "hiddenBy" TEXT,
    "hiddenReason" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Feedback_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Dataset" (
    "digest" TEXT NOT NULL,
    "repository" TEXT NOT NULL,
    "subjectDigest" TEXT NOT NULL,
    "manifestSize" INTEGER NOT NULL,
    "records" INTEGER NOT NULL,
    "preferences" INTEGER NOT NULL,
    "labelled" INTEGER NOT NULL,
    "transcripts" INTEGER NOT NULL,
    "asOf" TIMESTAMP(3),
    "builtBy" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Dataset_pkey" PRIMARY KEY ("repository","digest")
);

-- CreateTable
CREATE TABLE "DatasetRecord" (
    "repository" TEXT NOT NULL,
    "digest" TEXT NOT NULL,
    "feedbackId" TEXT NOT NULL,

    CONSTRAINT "DatasetRecord_pkey" PRIMARY KEY ("repository","digest","feedbackId")
);

-- CreateIndex
CREATE INDEX "Feedback_updatedAt_idx" ON "Feedback"("updatedAt");

-- CreateIndex
CREATE UNIQUE INDEX "Feedback_interactionId_author_key" ON "Feedback"("interactionId", "author");

-- CreateIndex
CREATE INDEX "Dataset_repository_subjectDigest_createdAt_idx" ON "Dataset"("repository", "subjectDigest", "createdAt");

-- CreateIndex
CREATE INDEX "DatasetRecord_feedbackId_idx" ON "DatasetRecord"("feedbackId");

