/** The schedules table: a cron expression plus everything each produced message is published with. */
import { blobToBytes } from "../core/encoding";
import type { HeaderMap } from "../core/headers";
import type { RedactSpec } from "../core/redact";
import type { CallbackConfig, FlowControl } from "../core/spec";

type Row = Record<string, unknown>;

export interface Schedule {
  tenantId: string;
  id: string;
  cron: string;
  destination: string;
  method: string;
  headers: HeaderMap;
  /** The body; empty until loaded when it lives in R2 (`bodyRef`). */
  body: Uint8Array;
  bodyRef: string | null;
  retries: number;
  retryDelayExpr: string | null;
  timeoutMs: number | null;
  delayMs: number | null;
  callback: string | null;
  failureCallback: string | null;
  callbackConfig: CallbackConfig | null;
  failureCallbackConfig: CallbackConfig | null;
  queueName: string | null;
  flowControl: FlowControl | null;
  labels: string[];
  callerIp: string | null;
  redact: RedactSpec | null;
  isPaused: boolean;
  createdAt: number;
  updatedAt: number;
  nextScheduleTime: number | null;
  lastScheduleTime: number | null;
  lastMessageIds: string[];
}

const json = <T>(v: unknown, fallback: T): T => (v == null ? fallback : (JSON.parse(String(v)) as T));
const str = (v: unknown): string | null => (v == null ? null : String(v));
const num = (v: unknown): number | null => (v == null ? null : Number(v));

function rowToSchedule(r: Row): Schedule {
  return {
    tenantId: String(r.tenant_id),
    id: String(r.id),
    cron: String(r.cron),
    destination: String(r.destination),
    method: String(r.method),
    headers: json(r.headers, {}),
    body: blobToBytes(r.body),
    bodyRef: str(r.body_ref),
    retries: Number(r.retries),
    retryDelayExpr: str(r.retry_delay_expr),
    timeoutMs: num(r.timeout_ms),
    delayMs: num(r.delay_ms),
    callback: str(r.callback),
    failureCallback: str(r.failure_callback),
    callbackConfig: json(r.callback_config, null),
    failureCallbackConfig: json(r.failure_callback_config, null),
    queueName: str(r.queue_name),
    flowControl: json(r.flow_control, null),
    labels: json(r.labels, []),
    callerIp: str(r.caller_ip),
    redact: json(r.redact, null),
    isPaused: Number(r.is_paused) === 1,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    nextScheduleTime: num(r.next_schedule_time),
    lastScheduleTime: num(r.last_schedule_time),
    lastMessageIds: json(r.last_message_ids, []),
  };
}

/**
 * Creates or replaces a schedule. A replacement keeps `created_at`, `is_paused` and the fire history,
 * and takes every other setting from `s` (contract §2.7).
 */
export async function upsertSchedule(db: D1Database, s: Schedule): Promise<Schedule> {
  const row = await db
    .prepare(
      `INSERT INTO schedules (tenant_id, id, cron, destination, method, headers, body, retries, retry_delay_expr,
         timeout_ms, delay_ms, callback, failure_callback, callback_config, failure_callback_config, queue_name,
         flow_control, labels, caller_ip, is_paused, created_at, updated_at, next_schedule_time, redact, body_ref)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, 0, ?20, ?20, ?21, ?22, ?23)
       ON CONFLICT (tenant_id, id) DO UPDATE SET cron = excluded.cron, destination = excluded.destination,
         method = excluded.method, headers = excluded.headers, body = excluded.body, body_ref = excluded.body_ref,
         retries = excluded.retries,
         retry_delay_expr = excluded.retry_delay_expr, timeout_ms = excluded.timeout_ms, delay_ms = excluded.delay_ms,
         callback = excluded.callback, failure_callback = excluded.failure_callback,
         callback_config = excluded.callback_config, failure_callback_config = excluded.failure_callback_config,
         queue_name = excluded.queue_name, flow_control = excluded.flow_control, labels = excluded.labels,
         caller_ip = excluded.caller_ip, updated_at = excluded.updated_at, redact = excluded.redact,
         next_schedule_time = CASE WHEN schedules.is_paused = 1 THEN NULL ELSE excluded.next_schedule_time END
       RETURNING *`,
    )
    .bind(
      s.tenantId,
      s.id,
      s.cron,
      s.destination,
      s.method,
      JSON.stringify(s.headers),
      s.bodyRef || !s.body.length ? null : s.body,
      s.retries,
      s.retryDelayExpr,
      s.timeoutMs,
      s.delayMs,
      s.callback,
      s.failureCallback,
      s.callbackConfig ? JSON.stringify(s.callbackConfig) : null,
      s.failureCallbackConfig ? JSON.stringify(s.failureCallbackConfig) : null,
      s.queueName,
      s.flowControl ? JSON.stringify(s.flowControl) : null,
      s.labels.length ? JSON.stringify(s.labels) : null,
      s.callerIp,
      s.createdAt,
      s.nextScheduleTime,
      s.redact ? JSON.stringify(s.redact) : null,
      s.bodyRef,
    )
    .first<Row>();
  return rowToSchedule(row!);
}

export async function getSchedule(db: D1Database, tenantId: string, id: string): Promise<Schedule | null> {
  const row = await db.prepare("SELECT * FROM schedules WHERE tenant_id = ?1 AND id = ?2").bind(tenantId, id).first<Row>();
  return row ? rowToSchedule(row) : null;
}

export async function listSchedules(db: D1Database, tenantId: string): Promise<Schedule[]> {
  const { results } = await db.prepare("SELECT * FROM schedules WHERE tenant_id = ?1 ORDER BY created_at").bind(tenantId).all<Row>();
  return results.map(rowToSchedule);
}

export async function deleteSchedule(db: D1Database, tenantId: string, id: string): Promise<boolean> {
  const res = await db.prepare("DELETE FROM schedules WHERE tenant_id = ?1 AND id = ?2").bind(tenantId, id).run();
  return res.meta.changes > 0;
}

export async function setPaused(db: D1Database, tenantId: string, id: string, paused: boolean, next: number | null, now: number): Promise<boolean> {
  const res = await db
    .prepare("UPDATE schedules SET is_paused = ?3, next_schedule_time = ?4, updated_at = ?5 WHERE tenant_id = ?1 AND id = ?2")
    .bind(tenantId, id, paused ? 1 : 0, next, now)
    .run();
  return res.meta.changes > 0;
}

/** States of the given messages (for `lastScheduleStates`). */
export async function messageStates(db: D1Database, ids: string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const { results } = await db
    .prepare("SELECT id, state FROM messages WHERE id IN (SELECT value FROM json_each(?1))")
    .bind(JSON.stringify(ids))
    .all<{ id: string; state: string }>();
  return new Map(results.map((r) => [r.id, r.state]));
}

/** Unpaused schedules whose next fire is long overdue (their timer was lost). */
export async function overdueSchedules(db: D1Database, before: number, limit: number): Promise<{ tenantId: string; id: string }[]> {
  const { results } = await db
    .prepare(
      `SELECT tenant_id, id FROM schedules WHERE is_paused = 0 AND next_schedule_time IS NOT NULL
       AND next_schedule_time < ?1 LIMIT ${limit}`,
    )
    .bind(before)
    .all<{ tenant_id: string; id: string }>();
  return results.map((r) => ({ tenantId: r.tenant_id, id: r.id }));
}

export async function countSchedules(db: D1Database, tenantId: string): Promise<number> {
  return Number(await db.prepare("SELECT count(*) AS n FROM schedules WHERE tenant_id = ?1").bind(tenantId).first("n"));
}

/**
 * Records a fire: the last fire time, the next one and the messages it produced, only if the schedule still waits
 * for exactly this fire and is not paused (a repeated or raced fire changes nothing).
 */
export function recordFire(
  db: D1Database,
  tenantId: string,
  scheduleId: string,
  fireTime: number,
  next: number | null,
  messageIds: string[],
): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE schedules SET last_schedule_time = ?3, next_schedule_time = ?4, last_message_ids = ?5
       WHERE tenant_id = ?1 AND id = ?2 AND next_schedule_time = ?6 AND is_paused = 0`,
    )
    .bind(tenantId, scheduleId, fireTime, next, JSON.stringify(messageIds), fireTime);
}

/** The id of a schedule of the tenant aimed at `destination` (a URL-group name), if any. */
export async function scheduleAimedAt(db: D1Database, tenantId: string, destination: string): Promise<string | null> {
  const row = await db.prepare("SELECT id FROM schedules WHERE tenant_id = ?1 AND destination = ?2 LIMIT 1").bind(tenantId, destination).first<{ id: string }>();
  return row?.id ?? null;
}
