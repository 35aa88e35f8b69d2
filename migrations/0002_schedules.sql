-- Migration number: 0002 	 schedules

CREATE TABLE schedules (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  cron TEXT NOT NULL,
  destination TEXT NOT NULL,          -- URL or URL-group name
  method TEXT NOT NULL,
  headers TEXT NOT NULL,              -- JSON {Name: [values]}
  body BLOB,
  retries INTEGER NOT NULL,
  retries_set INTEGER NOT NULL DEFAULT 0,
  retry_delay_expr TEXT,
  timeout_ms INTEGER,
  delay_ms INTEGER,                   -- added to each produced message
  callback TEXT,
  failure_callback TEXT,
  callback_config TEXT,
  failure_callback_config TEXT,
  queue_name TEXT,
  flow_control TEXT,
  labels TEXT,
  caller_ip TEXT,
  is_paused INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  next_schedule_time INTEGER,
  last_schedule_time INTEGER,
  last_message_ids TEXT,              -- JSON string[]: the messages of the last fire
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX schedules_next ON schedules(next_schedule_time) WHERE is_paused = 0;
