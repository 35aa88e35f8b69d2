-- Migration number: 0007 	 large bodies live in R2; rows keep a reference
-- A body, response body or callback payload above INLINE_BODY_MAX bytes is stored in the BODIES bucket under
-- "<tenant>/<sha256 of the bytes>", and its row holds that key instead of the bytes (the blob column is NULL).
-- Keys are content addresses, so rows with the same bytes share one object; the sweeper deletes an object once
-- no row refers to it. The partial indexes serve that check and hold entries only for large bodies.
ALTER TABLE messages ADD COLUMN body_ref TEXT;
ALTER TABLE schedules ADD COLUMN body_ref TEXT;
ALTER TABLE events ADD COLUMN response_body_ref TEXT;
ALTER TABLE dlq ADD COLUMN response_body_ref TEXT;
CREATE INDEX messages_body_ref ON messages(body_ref) WHERE body_ref IS NOT NULL;
CREATE INDEX schedules_body_ref ON schedules(body_ref) WHERE body_ref IS NOT NULL;
CREATE INDEX events_response_body_ref ON events(response_body_ref) WHERE response_body_ref IS NOT NULL;
CREATE INDEX dlq_response_body_ref ON dlq(response_body_ref) WHERE response_body_ref IS NOT NULL;
