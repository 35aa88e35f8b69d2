import { applyD1Migrations, env } from "cloudflare:test";

// Setup files may run more than once; applyD1Migrations() skips migrations already applied.
// The worker tests run with two D1 shards: the primary (DB) and DB_SHARD_1, both with every migration.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
await applyD1Migrations(env.DB_SHARD_1, env.TEST_MIGRATIONS);
