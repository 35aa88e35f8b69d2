-- Migration number: 0003 	 queues, URL groups, deduplication, held messages, redaction

-- A message waiting in a queue or flow-control gate is "held": the consumer and the sweeper leave it alone
-- until its gate admits it.
ALTER TABLE messages ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
-- JSON {"body"?: string, "headers"?: {Name: [values]}}: what read paths show instead of redacted originals.
ALTER TABLE messages ADD COLUMN redacted TEXT;

CREATE TABLE queues (
  tenant_id TEXT NOT NULL,
  name TEXT NOT NULL,
  parallelism INTEGER NOT NULL DEFAULT 1,
  paused INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, name)
);

CREATE TABLE topics (
  tenant_id TEXT NOT NULL,
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  default_headers TEXT,               -- JSON {name: string}: configuration merged into every publish
  PRIMARY KEY (tenant_id, name)
);

CREATE TABLE topic_endpoints (
  tenant_id TEXT NOT NULL,
  topic TEXT NOT NULL,
  url TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  position INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, topic, url)
);

-- Deduplication ids and the response the first publish got, until the window ends.
CREATE TABLE dedup (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  response TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX dedup_expires ON dedup(expires_at);

-- Flow-control keys a tenant has used (their counters live in the key's Gate Durable Object).
CREATE TABLE flow_control_keys (
  tenant_id TEXT NOT NULL,
  key TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, key)
);
