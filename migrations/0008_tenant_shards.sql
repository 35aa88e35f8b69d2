-- Migration number: 0008 	 the tenant-to-shard map
-- A deployment may bind several D1 databases (DB, DB_SHARD_1, …); each tenant's data lives in one of them.
-- This column, in the primary (DB), says which. Existing tenants are in shard 0, the primary itself. Every shard
-- gets every migration, so the tenants and tokens tables exist (empty) in the other shards too.
ALTER TABLE tenants ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
