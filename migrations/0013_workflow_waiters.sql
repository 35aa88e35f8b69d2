-- waitForEvent / notify (src/db/workflow-waiters.ts, docs/workflows.md).
-- A run waiting for an event: what to publish when the event comes (to url) or when the wait times out (the
-- delayed message timeout_message_id, already stored, which goes on only while this row exists).
CREATE TABLE workflow_waiters (
  tenant_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  run_id TEXT NOT NULL,
  url TEXT NOT NULL,
  deadline INTEGER NOT NULL,          -- ms
  headers TEXT NOT NULL,              -- JSON {name: value}: the publish headers of the message that resumes the run
  step TEXT NOT NULL,                 -- JSON: the waiting step, echoed back with the event's data
  timeout TEXT,
  timeout_url TEXT,
  timeout_headers TEXT,
  timeout_message_id TEXT,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, event_id, run_id)
) WITHOUT ROWID;
-- An event notified for one run before that run waits for it (notify with a run id): the wait takes it at once.
CREATE TABLE workflow_events (
  tenant_id TEXT NOT NULL,
  run_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  data BLOB,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, run_id, event_id)
) WITHOUT ROWID;
