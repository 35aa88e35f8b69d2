-- Migration number: 0010 	 daily message counts per tenant, for DAILY_MESSAGE_QUOTA
-- One row per tenant and UTC day (days since the Unix epoch), written only while a quota is set; the sweeper
-- deletes rows older than yesterday.
CREATE TABLE usage (
  tenant_id TEXT NOT NULL,
  day INTEGER NOT NULL,
  messages INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, day)
) WITHOUT ROWID;
