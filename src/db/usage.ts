/** Daily message counts per tenant (DAILY_MESSAGE_QUOTA), in the tenant's shard. */

/** The UTC day of a time, as days since the Unix epoch. */
export const dayOf = (ms: number): number => Math.floor(ms / 86_400_000);

/** Messages the tenant has published on `day` so far. */
export async function usedOn(db: D1Database, tenantId: string, day: number): Promise<number> {
  const n = await db.prepare("SELECT messages FROM usage WHERE tenant_id = ?1 AND day = ?2").bind(tenantId, day).first<number>("messages");
  return n ?? 0;
}

/** Adds `n` messages to the tenant's count of `day` (written in the same batch as the messages themselves). */
export function countMessages(db: D1Database, tenantId: string, day: number, n: number): D1PreparedStatement {
  return db
    .prepare("INSERT INTO usage (tenant_id, day, messages) VALUES (?1, ?2, ?3) ON CONFLICT (tenant_id, day) DO UPDATE SET messages = messages + excluded.messages")
    .bind(tenantId, day, n);
}

/** Forgets the counts of days before `day`. */
export function pruneUsage(db: D1Database, beforeDay: number): D1PreparedStatement {
  return db.prepare("DELETE FROM usage WHERE day < ?1").bind(beforeDay);
}
