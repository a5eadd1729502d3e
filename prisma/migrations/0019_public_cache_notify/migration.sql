-- Written by hand (Prisma cannot express triggers): the public answers that the platform caches
-- (platform/public-cache.ts) are read from these tables, so every change to them, by any process,
-- counts one generation up (in the writer's transaction: visible exactly when the change is) and
-- notifies the channel computatrum_public when it commits. Replicas on PostgreSQL LISTEN; on PGlite,
-- whose one session cannot deliver another connection's notifications, they read the generation.
CREATE TABLE "_computatrum_public_generation" (
    "id" INTEGER NOT NULL PRIMARY KEY CHECK ("id" = 1),
    "generation" BIGINT NOT NULL
);
INSERT INTO "_computatrum_public_generation" ("id", "generation") VALUES (1, 0);

CREATE FUNCTION computatrum_public_changed() RETURNS trigger AS $$
BEGIN
  UPDATE "_computatrum_public_generation" SET "generation" = "generation" + 1 WHERE "id" = 1;
  PERFORM pg_notify('computatrum_public', TG_TABLE_NAME);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER "Checkpoint_public_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "Checkpoint"
  FOR EACH STATEMENT EXECUTE FUNCTION computatrum_public_changed();
CREATE TRIGGER "Breed_public_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "Breed"
  FOR EACH STATEMENT EXECUTE FUNCTION computatrum_public_changed();
CREATE TRIGGER "Thread_public_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "Thread"
  FOR EACH STATEMENT EXECUTE FUNCTION computatrum_public_changed();
CREATE TRIGGER "Comment_public_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "Comment"
  FOR EACH STATEMENT EXECUTE FUNCTION computatrum_public_changed();
CREATE TRIGGER "Recording_public_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "Recording"
  FOR EACH STATEMENT EXECUTE FUNCTION computatrum_public_changed();
