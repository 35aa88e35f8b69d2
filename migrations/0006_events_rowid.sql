-- Migration number: 0006 	 events keyed by plain rowid; DLQ entries findable by message
-- AUTOINCREMENT makes every event insert also write the sqlite_sequence counter, which D1 bills as a written
-- row. A plain INTEGER PRIMARY KEY still grows with each insert; pruning removes the oldest rows only, so ids
-- are not reused while newer rows exist.
CREATE TABLE events_new (
  seq INTEGER PRIMARY KEY,
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
INSERT INTO events_new SELECT seq, tenant_id, message_id, time, state, error, next_delivery_time, response_status,
  response_headers, response_body FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_tenant_seq ON events(tenant_id, seq);
CREATE INDEX events_message ON events(message_id);

-- The sweeper keeps finished messages that still have a DLQ entry: look them up by message id.
CREATE INDEX dlq_message ON dlq(message_id);
