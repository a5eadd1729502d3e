-- CreateTable
CREATE TABLE "Checkpoint" (
    "id" TEXT NOT NULL,
    "repository" TEXT NOT NULL,
    "tag" TEXT NOT NULL,
    "day" TEXT,
    "status" TEXT NOT NULL,
    "reason" TEXT,
    "nickname" TEXT,
    "digest" TEXT,
    "size" BIGINT,
    "parentDigest" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Checkpoint_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Checkpoint_repository_tag_key" ON "Checkpoint"("repository", "tag");

-- CreateIndex
CREATE UNIQUE INDEX "Checkpoint_repository_nickname_key" ON "Checkpoint"("repository", "nickname");

