/**
 * Figures the console's overview shows and no API call returns: messages by state, deliveries per minute, the
 * DLQ's size, and the messages a message produced (its callbacks). Each reads one tenant's rows through an index
 * on the tenant's shard, and counts at most STATS_CAP rows per figure so a page stays fast at any volume.
 */

/** The most rows one figure counts; above it the console shows "at least". */
export const STATS_CAP = 100_000;

export interface StateCounts {
  counts: Record<string, number>;
  /** True when the window held more than STATS_CAP messages (the counts cover the newest STATS_CAP). */
  capped: boolean;
}

/** Messages created since `since`, by their current state. */
export async function stateCounts(db: D1Database, tenantId: string, since: number): Promise<StateCounts> {
  const { results } = await db
    .prepare(
      `SELECT state, count(*) AS n FROM (
         SELECT state FROM messages INDEXED BY messages_tenant WHERE tenant_id = ?1 AND created_at >= ?2
         ORDER BY created_at DESC LIMIT ?3)
       GROUP BY state`,
    )
    .bind(tenantId, since, STATS_CAP + 1)
    .all<{ state: string; n: number }>();
  const counts: Record<string, number> = {};
  let total = 0;
  for (const r of results) {
    counts[r.state] = Number(r.n);
    total += Number(r.n);
  }
  return { counts, capped: total > STATS_CAP };
}

export interface HourStats extends StateCounts {
  /** Deliveries in each of the last 60 minutes, oldest first (of messages made in that hour). */
  perMinute: number[];
}

/** The last hour in one read: messages made in it by state, and its deliveries per minute. */
export async function hourStats(db: D1Database, tenantId: string, now: number): Promise<HourStats> {
  const start = Math.floor(now / 60_000) * 60_000 - 59 * 60_000;
  const { results } = await db
    .prepare(
      `SELECT state, CASE WHEN state = 'DELIVERED' AND finished_at >= ?2 THEN CAST((finished_at - ?2) / 60000 AS INTEGER) ELSE -1 END AS slot, count(*) AS n
       FROM (SELECT state, finished_at FROM messages INDEXED BY messages_tenant WHERE tenant_id = ?1 AND created_at >= ?2
             ORDER BY created_at DESC LIMIT ?3)
       GROUP BY state, slot`,
    )
    .bind(tenantId, start, STATS_CAP + 1)
    .all<{ state: string; slot: number; n: number }>();
  const counts: Record<string, number> = {};
  const perMinute = new Array<number>(60).fill(0);
  let total = 0;
  for (const r of results) {
    const n = Number(r.n);
    counts[r.state] = (counts[r.state] ?? 0) + n;
    total += n;
    const slot = Math.floor(Number(r.slot));
    if (slot >= 0 && slot < 60) perMinute[slot] += n;
  }
  return { counts, capped: total > STATS_CAP, perMinute };
}

/** DLQ entries of the tenant, counted up to STATS_CAP + 1. */
export async function dlqSize(db: D1Database, tenantId: string): Promise<number> {
  const row = await db
    .prepare("SELECT count(*) AS n FROM (SELECT 1 FROM dlq WHERE tenant_id = ?1 LIMIT ?2)")
    .bind(tenantId, STATS_CAP + 1)
    .first<{ n: number }>();
  return Number(row?.n ?? 0);
}

export interface Related {
  id: string;
  kind: string;
  state: string;
  url: string;
}

/** The callback and failure-callback messages a message produced, and the message it was produced by. */
export async function relatedMessages(db: D1Database, tenantId: string, id: string): Promise<{ parent: Related | null; children: Related[] }> {
  const [parent, children] = await db.batch<Related & { parent_id?: string }>([
    db
      .prepare(
        `SELECT p.id, p.kind, p.state, p.url FROM messages c JOIN messages p ON p.id = c.parent_id AND p.tenant_id = c.tenant_id
         WHERE c.id = ?1 AND c.tenant_id = ?2`,
      )
      .bind(id, tenantId),
    db.prepare("SELECT id, kind, state, url FROM messages WHERE parent_id = ?1 AND tenant_id = ?2 ORDER BY id LIMIT 100").bind(id, tenantId),
  ]);
  return { parent: parent.results[0] ?? null, children: children.results };
}
