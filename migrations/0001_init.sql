-- Migration number: 0001 	 tenants, tokens, keys, messages, events, DLQ

-- A tenant owns every other row.
CREATE TABLE tenants (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

-- API tokens, stored as SHA-256 hex of the token; never plaintext.
CREATE TABLE tokens (
  token_hash TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  read_only INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);

-- The current and next signing key of each tenant.
CREATE TABLE signing_keys (
  tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
  current_key TEXT NOT NULL,
  next_key TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);

-- One row per message (published, schedule-produced, callback or failure callback).
-- The row outlives delivery (state terminal, finished_at set) so logs and the DLQ can show it;
-- retention pruning deletes it.
CREATE TABLE messages (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  kind TEXT NOT NULL,                 -- message | callback | failure_callback
  parent_id TEXT,                     -- the source message of a callback
  url TEXT NOT NULL,
  method TEXT NOT NULL,
  headers TEXT NOT NULL,              -- JSON {Name: [values]}: the headers delivered
  body BLOB,
  max_retries INTEGER NOT NULL,
  retry_delay_expr TEXT,
  timeout_ms INTEGER,                 -- NULL: the deployment's MAX_TIMEOUT
  not_before INTEGER NOT NULL,        -- ms; 0 when not delayed
  created_at INTEGER NOT NULL,
  callback TEXT,
  failure_callback TEXT,
  callback_config TEXT,               -- JSON CallbackConfig
  failure_callback_config TEXT,       -- JSON CallbackConfig
  topic_name TEXT,
  endpoint_name TEXT,
  queue_name TEXT,
  schedule_id TEXT,
  caller_ip TEXT,
  labels TEXT,                        -- JSON string[]
  flow_control TEXT,                  -- JSON {key, parallelism?, rate?, period?}
  extra TEXT,                         -- JSON: kind-specific data (e.g. a failure callback's dlqId)
  state TEXT NOT NULL,
  retried INTEGER NOT NULL DEFAULT 0,
  due_at INTEGER NOT NULL,            -- when the next attempt is due (ms)
  lease_until INTEGER,                -- an attempt is under way until then
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  redriven_at INTEGER,                -- last time the sweeper re-sent it to the queue
  finished_at INTEGER                 -- set when terminal
);
CREATE INDEX messages_tenant_created ON messages(tenant_id, created_at) WHERE finished_at IS NULL;
CREATE INDEX messages_unfinished_due ON messages(due_at) WHERE finished_at IS NULL;
CREATE INDEX messages_finished ON messages(finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX messages_parent ON messages(parent_id) WHERE parent_id IS NOT NULL;

-- One row per state transition: the logs API.
CREATE TABLE events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  time INTEGER NOT NULL,
  state TEXT NOT NULL,
  error TEXT,
  next_delivery_time INTEGER,
  response_status INTEGER,
  response_headers TEXT,
  response_body BLOB
);
CREATE INDEX events_tenant_seq ON events(tenant_id, seq);
CREATE INDEX events_message ON events(message_id);
CREATE INDEX events_time ON events(time);

-- Dead-letter queue: a failed message and its final response.
CREATE TABLE dlq (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  dlq_id TEXT NOT NULL UNIQUE,
  tenant_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  response_status INTEGER NOT NULL,
  response_headers TEXT,
  response_body BLOB,
  error TEXT
);
CREATE INDEX dlq_tenant_seq ON dlq(tenant_id, seq);
CREATE INDEX dlq_created ON dlq(created_at);
