/** Deduplication ids of publishes and schedule creates (the `dedup` table), per tenant, for DEDUP_WINDOW. */

/** The stored response of an earlier call with this dedup id, if its window is still open. */
export async function dedupResponse(db: D1Database, tenantId: string, key: string, now: number): Promise<string | null> {
  const row = await db
    .prepare("SELECT response FROM dedup WHERE tenant_id = ?1 AND id = ?2 AND expires_at > ?3")
    .bind(tenantId, key, now)
    .first<{ response: string }>();
  return row?.response ?? null;
}

/**
 * Statements that take a dedup id for a publish: an expired row is removed, then a plain INSERT, so that if another
 * publish took the id meanwhile the whole batch fails and nothing is stored.
 */
export function takeDedup(db: D1Database, tenantId: string, key: string, response: string, now: number, expiresAt: number): D1PreparedStatement[] {
  return [
    db.prepare("DELETE FROM dedup WHERE tenant_id = ?1 AND id = ?2 AND expires_at <= ?3").bind(tenantId, key, now),
    db.prepare("INSERT INTO dedup (tenant_id, id, response, expires_at) VALUES (?1, ?2, ?3, ?4)").bind(tenantId, key, response, expiresAt),
  ];
}

/** Records (or refreshes) a dedup id with its response, for a call that is not part of a publish batch. */
export async function putDedup(db: D1Database, tenantId: string, key: string, response: string, expiresAt: number): Promise<void> {
  await db
    .prepare(
      `INSERT INTO dedup (tenant_id, id, response, expires_at) VALUES (?1, ?2, ?3, ?4)
       ON CONFLICT (tenant_id, id) DO UPDATE SET response = excluded.response, expires_at = excluded.expires_at`,
    )
    .bind(tenantId, key, response, expiresAt)
    .run();
}
