-- Migration number: 0005 	 redaction settings of schedules
ALTER TABLE schedules ADD COLUMN redact TEXT;            -- JSON RedactSpec applied to each produced message
