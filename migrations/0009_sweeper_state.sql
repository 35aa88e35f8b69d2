-- Migration number: 0009 	 small state the sweeper keeps between runs
-- name 'r2_cursor': where the walk over the BODIES bucket for objects no row refers to goes on ("" = start over).
CREATE TABLE sweeper_state (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
