/** Runs waiting for events (waitForEvent), and events that came for a run before it waited (docs/workflows.md). */

export interface Waiter {
  tenantId: string;
  eventId: string;
  runId: string;
  url: string;
  deadline: number;
  headers: Record<string, string>;
  step: Record<string, unknown>;
  timeout: string | null;
  timeoutUrl: string | null;
  timeoutHeaders: Record<string, string[]> | null;
  timeoutMessageId: string | null;
  createdAt: number;
}

const COLUMNS = "tenant_id, event_id, run_id, url, deadline, headers, step, timeout, timeout_url, timeout_headers, timeout_message_id, created_at";

function toWaiter(r: Record<string, unknown>): Waiter {
  return {
    tenantId: String(r.tenant_id),
    eventId: String(r.event_id),
    runId: String(r.run_id),
    url: String(r.url),
    deadline: Number(r.deadline),
    headers: JSON.parse(String(r.headers)) as Record<string, string>,
    step: JSON.parse(String(r.step)) as Record<string, unknown>,
    timeout: r.timeout === null ? null : String(r.timeout),
    timeoutUrl: r.timeout_url === null ? null : String(r.timeout_url),
    timeoutHeaders: r.timeout_headers === null ? null : (JSON.parse(String(r.timeout_headers)) as Record<string, string[]>),
    timeoutMessageId: r.timeout_message_id === null ? null : String(r.timeout_message_id),
    createdAt: Number(r.created_at),
  };
}

export function addWaiter(db: D1Database, w: Waiter): D1PreparedStatement {
  return db
    .prepare(
      `INSERT OR REPLACE INTO workflow_waiters (${COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)`,
    )
    .bind(w.tenantId, w.eventId, w.runId, w.url, w.deadline, JSON.stringify(w.headers), JSON.stringify(w.step), w.timeout, w.timeoutUrl,
      w.timeoutHeaders ? JSON.stringify(w.timeoutHeaders) : null, w.timeoutMessageId, w.createdAt);
}

/** Takes (deletes and returns) the waiters of an event: all runs', or one run's. A waiter is taken once. */
export async function takeWaiters(db: D1Database, tenantId: string, eventId: string, runId: string | null): Promise<Waiter[]> {
  const { results } = await db
    .prepare(`DELETE FROM workflow_waiters WHERE tenant_id = ?1 AND event_id = ?2 AND (?3 IS NULL OR run_id = ?3) RETURNING ${COLUMNS}`)
    .bind(tenantId, eventId, runId)
    .all();
  return results.map(toWaiter);
}

/** Whether the waiter a timeout message stands for was still there (and is now taken by the timeout). */
export async function takeWaiterForTimeout(db: D1Database, tenantId: string, eventId: string, runId: string): Promise<boolean> {
  const r = await db
    .prepare("DELETE FROM workflow_waiters WHERE tenant_id = ?1 AND event_id = ?2 AND run_id = ?3 RETURNING run_id")
    .bind(tenantId, eventId, runId)
    .first();
  return r !== null;
}

export async function listWaiters(db: D1Database, tenantId: string, eventId: string): Promise<Waiter[]> {
  const { results } = await db.prepare(`SELECT ${COLUMNS} FROM workflow_waiters WHERE tenant_id = ?1 AND event_id = ?2 LIMIT 1000`).bind(tenantId, eventId).all();
  return results.map(toWaiter);
}

/** Keeps an event for a run that does not wait for it yet. */
export function keepEvent(db: D1Database, tenantId: string, runId: string, eventId: string, data: Uint8Array, now: number): D1PreparedStatement {
  return db
    .prepare("INSERT OR REPLACE INTO workflow_events (tenant_id, run_id, event_id, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
    .bind(tenantId, runId, eventId, data, now);
}

/** Takes an event kept for a run, or null. */
export async function takeEvent(db: D1Database, tenantId: string, runId: string, eventId: string): Promise<Uint8Array | null> {
  const r = await db
    .prepare("DELETE FROM workflow_events WHERE tenant_id = ?1 AND run_id = ?2 AND event_id = ?3 RETURNING data")
    .bind(tenantId, runId, eventId)
    .first<{ data: ArrayBuffer | number[] | null }>();
  if (!r) return null;
  const d = r.data;
  return d === null ? new Uint8Array(0) : d instanceof ArrayBuffer ? new Uint8Array(d) : Uint8Array.from(d);
}

/** The waits of one run (by the workflow_waiters_run index). */
export async function runWaiters(db: D1Database, tenantId: string, runId: string): Promise<Waiter[]> {
  const { results } = await db.prepare(`SELECT ${COLUMNS} FROM workflow_waiters WHERE tenant_id = ?1 AND run_id = ?2`).bind(tenantId, runId).all();
  return results.map(toWaiter);
}

/** Drops the waiters and kept events of ended runs (a run that ended waits for nothing). */
export function dropForRun(db: D1Database, tenantId: string, runId: string): D1PreparedStatement[] {
  return [
    db.prepare("DELETE FROM workflow_waiters WHERE tenant_id = ?1 AND run_id = ?2").bind(tenantId, runId),
    db.prepare("DELETE FROM workflow_events WHERE tenant_id = ?1 AND run_id = ?2").bind(tenantId, runId),
  ];
}
