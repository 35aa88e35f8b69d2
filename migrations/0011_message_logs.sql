-- Migration number: 0011 	 a message's log lives in its own row; the messages table is keyed by id alone
--
-- D1 bills every row a write touches, index entries included. Before this migration a delivered message wrote 19:
-- its row with three index entries, and three log rows with two index entries each, all deleted again later. Now:
-- - `messages` is a WITHOUT ROWID table keyed by `id` (no separate primary-key index), with one index that a
--   message enters at insert and never moves in (`messages_tenant`, by tenant and creation time);
-- - its log entries are a JSON array in the row (`log`), appended by the same UPDATE that changes its state;
-- - the sweeper finds lost work through `messages_watch`, which holds only the unfinished messages that are not
--   on the common path (delayed, held, retrying, or found late by the sweeper's walk over recent ids);
-- - `log_marks` anchors the entries of a message that happen long after it was created, so that the logs API can
--   list entries by time (see docs/storage.md, "The log of a message").
-- A message delivered at once thus writes 5 rows over its life: insert (row + messages_tenant), claim, outcome,
-- and its deletion.

CREATE TABLE messages_v2 (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  state TEXT NOT NULL,
  finished_at INTEGER,
  due_at INTEGER NOT NULL,
  lease_until INTEGER,
  watch INTEGER NOT NULL DEFAULT 0,   -- 1: in messages_watch while unfinished (not on the common path)
  held INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  retried INTEGER NOT NULL DEFAULT 0,
  redriven_at INTEGER,
  anchor_at INTEGER NOT NULL,         -- the newest log anchor: created_at, or the time of the newest log mark
  kind TEXT NOT NULL,
  parent_id TEXT,
  url TEXT NOT NULL,
  method TEXT NOT NULL,
  max_retries INTEGER NOT NULL,
  retry_delay_expr TEXT,
  timeout_ms INTEGER,
  not_before INTEGER NOT NULL,
  callback TEXT,
  failure_callback TEXT,
  callback_config TEXT,
  failure_callback_config TEXT,
  topic_name TEXT,
  endpoint_name TEXT,
  queue_name TEXT,
  schedule_id TEXT,
  caller_ip TEXT,
  labels TEXT,
  flow_control TEXT,
  extra TEXT,
  redacted TEXT,
  body_ref TEXT,
  headers TEXT NOT NULL,
  log TEXT NOT NULL DEFAULT '[]',     -- JSON array of log entries, oldest first
  body BLOB
) WITHOUT ROWID;

CREATE TABLE log_marks (
  tenant_id TEXT NOT NULL,
  time INTEGER NOT NULL,
  message_id TEXT NOT NULL,
  PRIMARY KEY (tenant_id, time, message_id)
) WITHOUT ROWID;

-- Messages stored before ids carried their creation time: pruning's walk over ids (in time order) cannot tell
-- when it has passed these, so pruning visits them through this list until they are gone.
CREATE TABLE legacy_messages (
  id TEXT PRIMARY KEY
) WITHOUT ROWID;
INSERT INTO legacy_messages (id) SELECT id FROM messages;

-- Response bodies that older rows kept in R2 under content-addressed keys (newer keys name their message).
CREATE TABLE legacy_response_refs (
  ref TEXT NOT NULL,
  message_id TEXT NOT NULL,
  PRIMARY KEY (ref, message_id)
) WITHOUT ROWID;

-- Each old log row becomes an entry of its message's log. An entry more than 30 s (the log window) after its
-- message's creation gets a mark of its own, at its own time.
INSERT INTO messages_v2 (id, tenant_id, created_at, state, finished_at, due_at, lease_until, watch, held, cancel_requested,
  retried, redriven_at, anchor_at, kind, parent_id, url, method, max_retries, retry_delay_expr, timeout_ms, not_before,
  callback, failure_callback, callback_config, failure_callback_config, topic_name, endpoint_name, queue_name,
  schedule_id, caller_ip, labels, flow_control, extra, redacted, body_ref, headers, log, body)
SELECT m.id, m.tenant_id, m.created_at, m.state, m.finished_at, m.due_at, m.lease_until,
  CASE WHEN m.finished_at IS NULL THEN 1 ELSE 0 END, m.held, m.cancel_requested, m.retried, m.redriven_at,
  coalesce((SELECT max(e.time) FROM events e WHERE e.message_id = m.id AND e.time > m.created_at + 30000), m.created_at),
  m.kind, m.parent_id, m.url, m.method, m.max_retries, m.retry_delay_expr, m.timeout_ms, m.not_before,
  m.callback, m.failure_callback, m.callback_config, m.failure_callback_config, m.topic_name, m.endpoint_name, m.queue_name,
  m.schedule_id, m.caller_ip, m.labels, m.flow_control, m.extra, m.redacted, m.body_ref, m.headers,
  coalesce((SELECT json_group_array(json(x.entry)) FROM (
    SELECT json_object('t', e.time, 'a', CASE WHEN e.time > m.created_at + 30000 THEN e.time ELSE m.created_at END,
      's', e.state, 'e', e.error, 'n', e.next_delivery_time, 'c', e.response_status, 'h', json(e.response_headers),
      'x', CASE WHEN e.response_body IS NOT NULL AND length(e.response_body) > 0 THEN hex(e.response_body) END,
      'r', e.response_body_ref) AS entry
    FROM events e WHERE e.message_id = m.id ORDER BY e.seq) x), '[]'),
  m.body
FROM messages m;

INSERT INTO log_marks (tenant_id, time, message_id)
SELECT DISTINCT e.tenant_id, e.time, e.message_id FROM events e JOIN messages m ON m.id = e.message_id
WHERE e.time > m.created_at + 30000;

INSERT INTO legacy_response_refs (ref, message_id)
SELECT DISTINCT response_body_ref, message_id FROM events WHERE response_body_ref IS NOT NULL;

DROP TABLE events;
DROP TABLE messages;
ALTER TABLE messages_v2 RENAME TO messages;

CREATE INDEX messages_tenant ON messages(tenant_id, created_at);
CREATE INDEX messages_watch ON messages(due_at) WHERE finished_at IS NULL AND watch = 1;
CREATE INDEX messages_parent ON messages(parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX messages_body_ref ON messages(body_ref) WHERE body_ref IS NOT NULL;

-- A message's marks go with it.
CREATE TRIGGER messages_log_marks_delete AFTER DELETE ON messages WHEN old.anchor_at > old.created_at
BEGIN
  DELETE FROM log_marks WHERE tenant_id = old.tenant_id AND message_id = old.id
    AND time IN (SELECT DISTINCT value ->> '$.a' FROM json_each(old.log));
END;

-- An entry more than the log window after its message's newest anchor moves `anchor_at` to its own time: that
-- time becomes a mark, through which the logs API finds the entry (src/db/logs.ts).
CREATE TRIGGER messages_log_marks_insert AFTER UPDATE OF anchor_at ON messages WHEN new.anchor_at > old.anchor_at
BEGIN
  INSERT INTO log_marks (tenant_id, time, message_id) VALUES (new.tenant_id, new.anchor_at, new.id) ON CONFLICT DO NOTHING;
END;
