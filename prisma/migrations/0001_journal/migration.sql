-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateTable
CREATE TABLE "JournalTransaction" (
    "id" TEXT NOT NULL,
    "germline" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "reference" TEXT,
    "reservationId" TEXT,
    "amount" BIGINT NOT NULL,
    "currency" TEXT NOT NULL,
    "sequence" BIGINT NOT NULL,
    "occurredAt" TIMESTAMP(3) NOT NULL,
    "recordedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "JournalTransaction_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "JournalPosting" (
    "id" TEXT NOT NULL,
    "transactionId" TEXT NOT NULL,
    "germline" TEXT NOT NULL,
    "account" TEXT NOT NULL,
    "amount" BIGINT NOT NULL,

    CONSTRAINT "JournalPosting_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "JournalTransaction_germline_occurredAt_idx" ON "JournalTransaction"("germline", "occurredAt");

-- CreateIndex
CREATE UNIQUE INDEX "JournalTransaction_germline_sequence_key" ON "JournalTransaction"("germline", "sequence");

-- CreateIndex
CREATE INDEX "JournalPosting_germline_account_idx" ON "JournalPosting"("germline", "account");

-- AddForeignKey
ALTER TABLE "JournalPosting" ADD CONSTRAINT "JournalPosting_transactionId_fkey" FOREIGN KEY ("transactionId") REFERENCES "JournalTransaction"("id") ON DELETE RESTRICT ON UPDATE CASCADE;


-- Written by hand (Prisma cannot express triggers): the journal is append-only.
CREATE FUNCTION computatrum_journal_is_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'the budget journal is append-only: % on % is refused', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER "JournalTransaction_append_only" BEFORE UPDATE OR DELETE ON "JournalTransaction"
  FOR EACH ROW EXECUTE FUNCTION computatrum_journal_is_append_only();
CREATE TRIGGER "JournalPosting_append_only" BEFORE UPDATE OR DELETE ON "JournalPosting"
  FOR EACH ROW EXECUTE FUNCTION computatrum_journal_is_append_only();
