/** Flow-control keys a tenant has used (`flow_control_keys`): what GET /v2/flowControl lists. */

/** Notes that a tenant used a key (idempotent; joins the batch that stores the message). */
export function rememberFlowKey(db: D1Database, tenantId: string, key: string, now: number): D1PreparedStatement {
  return db.prepare("INSERT OR IGNORE INTO flow_control_keys (tenant_id, key, created_at) VALUES (?1, ?2, ?3)").bind(tenantId, key, now);
}

export async function flowKeyExists(db: D1Database, tenantId: string, key: string): Promise<boolean> {
  return (await db.prepare("SELECT 1 AS one FROM flow_control_keys WHERE tenant_id = ?1 AND key = ?2").bind(tenantId, key).first()) !== null;
}

/** The tenant's keys that contain `search` (all of them for ""), in key order. */
export async function searchFlowKeys(db: D1Database, tenantId: string, search: string): Promise<string[]> {
  const { results } = await db
    .prepare("SELECT key FROM flow_control_keys WHERE tenant_id = ?1 AND instr(key, ?2) > 0 ORDER BY key")
    .bind(tenantId, search)
    .all<{ key: string }>();
  return results.map((r) => r.key);
}
