/** The messages table: one row per message, kept after it ends so logs and the DLQ can show it. */
import { blobToBytes } from "../core/encoding";
import type { MessageState, StoredMessage } from "../core/types";

type Row = Record<string, unknown>;

const str = (v: unknown): string | null => (v == null ? null : String(v));
const num = (v: unknown): number | null => (v == null ? null : Number(v));
function json<T>(v: unknown, fallback: T): T {
  return v == null || v === "" ? fallback : (JSON.parse(String(v)) as T);
}

export function rowToMessage(r: Row): StoredMessage {
  return {
    id: String(r.id),
    tenantId: String(r.tenant_id),
    kind: String(r.kind) as StoredMessage["kind"],
    parentId: str(r.parent_id),
    url: String(r.url),
    method: String(r.method),
    headers: json(r.headers, {}),
    body: blobToBytes(r.body),
    bodyRef: str(r.body_ref),
    maxRetries: Number(r.max_retries),
    retryDelayExpr: str(r.retry_delay_expr),
    timeoutMs: num(r.timeout_ms),
    notBefore: Number(r.not_before),
    createdAt: Number(r.created_at),
    callback: str(r.callback),
    failureCallback: str(r.failure_callback),
    callbackConfig: json(r.callback_config, null),
    failureCallbackConfig: json(r.failure_callback_config, null),
    topicName: str(r.topic_name),
    endpointName: str(r.endpoint_name),
    queueName: str(r.queue_name),
    scheduleId: str(r.schedule_id),
    callerIp: str(r.caller_ip),
    labels: json(r.labels, []),
    flowControl: json(r.flow_control, null),
    extra: json(r.extra, {}),
    state: String(r.state) as MessageState,
    retried: Number(r.retried),
    dueAt: Number(r.due_at),
    leaseUntil: num(r.lease_until),
    cancelRequested: Number(r.cancel_requested) === 1,
    finishedAt: num(r.finished_at),
    held: Number(r.held) === 1,
    redacted: json(r.redacted, null),
  };
}

const nullIfEmpty = <T>(v: T | null | undefined): T | null => (v === undefined ? null : v);

/** INSERT for a new message; `ON CONFLICT DO NOTHING` makes a replayed insert harmless. */
export function insertMessage(db: D1Database, m: StoredMessage): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO messages (id, tenant_id, kind, parent_id, url, method, headers, body, max_retries,
         retry_delay_expr, timeout_ms, not_before, created_at, callback, failure_callback, callback_config,
         failure_callback_config, topic_name, endpoint_name, queue_name, schedule_id, caller_ip, labels,
         flow_control, extra, state, retried, due_at, held, redacted, body_ref)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
         ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)
       ON CONFLICT (id) DO NOTHING`,
    )
    .bind(
      m.id,
      m.tenantId,
      m.kind,
      m.parentId,
      m.url,
      m.method,
      JSON.stringify(m.headers),
      m.bodyRef ? null : m.body,
      m.maxRetries,
      m.retryDelayExpr,
      m.timeoutMs,
      m.notBefore,
      m.createdAt,
      m.callback,
      m.failureCallback,
      m.callbackConfig ? JSON.stringify(m.callbackConfig) : null,
      m.failureCallbackConfig ? JSON.stringify(m.failureCallbackConfig) : null,
      nullIfEmpty(m.topicName),
      nullIfEmpty(m.endpointName),
      nullIfEmpty(m.queueName),
      nullIfEmpty(m.scheduleId),
      nullIfEmpty(m.callerIp),
      m.labels.length ? JSON.stringify(m.labels) : null,
      m.flowControl ? JSON.stringify(m.flowControl) : null,
      Object.keys(m.extra).length ? JSON.stringify(m.extra) : null,
      m.state,
      m.retried,
      m.dueAt,
      m.held ? 1 : 0,
      m.redacted ? JSON.stringify(m.redacted) : null,
      m.bodyRef,
    );
}

/** A message of this tenant that is still in flight (not terminal), or null. */
export async function getPendingMessage(db: D1Database, tenantId: string, id: string): Promise<StoredMessage | null> {
  const row = await db
    .prepare("SELECT * FROM messages WHERE id = ?1 AND tenant_id = ?2 AND finished_at IS NULL")
    .bind(id, tenantId)
    .first<Row>();
  return row ? rowToMessage(row) : null;
}

/** A message with its tenant's current signing key, for the consumer. */
export async function loadForDelivery(
  db: D1Database,
  id: string,
): Promise<{ message: StoredMessage; signingKey: string } | null> {
  const row = await db
    .prepare(
      `SELECT m.*, k.current_key AS signing_key FROM messages m
       JOIN signing_keys k ON k.tenant_id = m.tenant_id WHERE m.id = ?1`,
    )
    .bind(id)
    .first<Row>();
  return row ? { message: rowToMessage(row), signingKey: String(row.signing_key) } : null;
}

/** Ids of a tenant's pending, not yet cancel-requested messages matching a condition, oldest first. */
export async function selectPendingIds(
  db: D1Database,
  tenantId: string,
  where: { sql: string; params: unknown[] },
  limit: number,
): Promise<{ id: string; dueAt: number }[]> {
  const rows = await db
    .prepare(
      `SELECT m.id, m.due_at FROM messages m WHERE m.tenant_id = ?${where.params.length + 1} AND m.finished_at IS NULL
       AND m.cancel_requested = 0 AND ${where.sql} ORDER BY m.due_at LIMIT ${limit}`,
    )
    .bind(...where.params, tenantId)
    .all<{ id: string; due_at: number }>();
  return rows.results.map((r) => ({ id: r.id, dueAt: Number(r.due_at) }));
}

/**
 * Cancels pending messages: logs CANCEL_REQUESTED for each; those with no attempt under way become
 * CANCELED at once (an attempt under way completes, and the consumer then applies the cancel).
 * Returns how many were cancelled.
 */
export async function cancelMessages(db: D1Database, tenantId: string, ids: string[], now: number): Promise<number> {
  if (ids.length === 0) return 0;
  const list = JSON.stringify(ids);
  const sel = `tenant_id = ?1 AND id IN (SELECT value FROM json_each(?2)) AND finished_at IS NULL`;
  const idle = `(lease_until IS NULL OR lease_until < ?3)`;
  const results = await db.batch([
    db
      .prepare(
        `INSERT INTO events (tenant_id, message_id, time, state)
         SELECT tenant_id, id, ?3, 'CANCEL_REQUESTED' FROM messages WHERE ${sel} AND cancel_requested = 0`,
      )
      .bind(tenantId, list, now),
    db
      .prepare(`UPDATE messages SET cancel_requested = 1, state = 'CANCEL_REQUESTED' WHERE ${sel} AND cancel_requested = 0`)
      .bind(tenantId, list),
    db
      .prepare(
        `INSERT INTO events (tenant_id, message_id, time, state)
         SELECT tenant_id, id, ?3, 'CANCELED' FROM messages WHERE ${sel} AND cancel_requested = 1 AND ${idle}`,
      )
      .bind(tenantId, list, now),
    db
      .prepare(`UPDATE messages SET state = 'CANCELED', finished_at = ?3 WHERE ${sel} AND cancel_requested = 1 AND ${idle}`)
      .bind(tenantId, list, now),
  ]);
  return results[1].meta.changes;
}
