/** FIFO queues: settings in D1; ordering and slots live in each queue's Gate Durable Object. */
export interface QueueRow {
  name: string;
  parallelism: number;
  paused: boolean;
  createdAt: number;
  updatedAt: number;
}

type Row = { name: string; parallelism: number; paused: number; created_at: number; updated_at: number };

const toQueue = (r: Row): QueueRow => ({
  name: r.name,
  parallelism: Number(r.parallelism),
  paused: Number(r.paused) === 1,
  createdAt: Number(r.created_at),
  updatedAt: Number(r.updated_at),
});

/** Creates a queue with parallelism 1 if it does not exist (enqueue auto-creates). */
export function ensureQueue(db: D1Database, tenantId: string, name: string, now: number): D1PreparedStatement {
  return db
    .prepare("INSERT OR IGNORE INTO queues (tenant_id, name, parallelism, paused, created_at, updated_at) VALUES (?1, ?2, 1, 0, ?3, ?3)")
    .bind(tenantId, name, now);
}

export async function upsertQueue(db: D1Database, tenantId: string, name: string, parallelism: number, paused: boolean, now: number): Promise<void> {
  await db
    .prepare(
      `INSERT INTO queues (tenant_id, name, parallelism, paused, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)
       ON CONFLICT (tenant_id, name) DO UPDATE SET parallelism = excluded.parallelism, paused = excluded.paused,
         updated_at = excluded.updated_at`,
    )
    .bind(tenantId, name, parallelism, paused ? 1 : 0, now)
    .run();
}

export async function getQueue(db: D1Database, tenantId: string, name: string): Promise<QueueRow | null> {
  const r = await db.prepare("SELECT * FROM queues WHERE tenant_id = ?1 AND name = ?2").bind(tenantId, name).first<Row>();
  return r ? toQueue(r) : null;
}

export async function listQueues(db: D1Database, tenantId: string): Promise<QueueRow[]> {
  const { results } = await db.prepare("SELECT * FROM queues WHERE tenant_id = ?1 ORDER BY created_at, name").bind(tenantId).all<Row>();
  return results.map(toQueue);
}

export async function setQueuePaused(db: D1Database, tenantId: string, name: string, paused: boolean, now: number): Promise<boolean> {
  const r = await db
    .prepare("UPDATE queues SET paused = ?3, updated_at = ?4 WHERE tenant_id = ?1 AND name = ?2")
    .bind(tenantId, name, paused ? 1 : 0, now)
    .run();
  return r.meta.changes > 0;
}

export async function deleteQueueRow(db: D1Database, tenantId: string, name: string): Promise<boolean> {
  const r = await db.prepare("DELETE FROM queues WHERE tenant_id = ?1 AND name = ?2").bind(tenantId, name).run();
  return r.meta.changes > 0;
}

export async function countQueues(db: D1Database, tenantId: string): Promise<number> {
  return Number(await db.prepare("SELECT count(*) AS n FROM queues WHERE tenant_id = ?1").bind(tenantId).first("n"));
}
