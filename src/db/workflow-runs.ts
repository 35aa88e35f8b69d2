/**
 * Upstash Workflow runs (docs/workflows.md). A run is one row: its state, the trigger's configuration (which the
 * SDK sends only once, on the message that starts the run) and its step history, a JSON array appended to by the
 * same commit that stores each message of the run. Every call to the workflow endpoint carries the history up to
 * and including the message being delivered.
 */
import { bytesToBase64 } from "../core/encoding";
import type { CallbackConfig, FlowControl } from "../core/spec";
import type { HeaderMap } from "../core/headers";
import type { StoredMessage } from "../core/types";

export type RunState = "RUN_STARTED" | "RUN_SUCCESS" | "RUN_FAILED" | "RUN_CANCELED";

/** What the run's first message set, applied to every later message of the run (the SDK sends it only once). */
export interface RunConfig {
  retries: number | null;
  retryDelay: string | null;
  flowControl: FlowControl | null;
  failureCallback: string | null;
  failureCallbackConfig: CallbackConfig | null;
  /** Headers forwarded to the workflow endpoint on every call (the user's headers, labels). */
  forward: HeaderMap;
  labels: string[];
  /** The first message's Content-Type (restarts send the payload with it). */
  contentType?: string | null;
}

/** One element of the history as stored: message id, call type, body (base64). */
export interface StoredStep {
  m: string;
  c: string;
  /** The body, base64; empty when it is in R2 (`r`). */
  b: string;
  /** The key of the body in the BODIES bucket, for a body above INLINE_BODY_MAX, and its size. */
  r?: string;
  z?: number;
}

export interface WorkflowRun {
  tenantId: string;
  runId: string;
  url: string;
  state: RunState;
  createdAt: number;
  completedAt: number | null;
  response: string | null;
  config: RunConfig;
  history: StoredStep[];
  dlqId: string | null;
  invoker: Record<string, unknown> | null;
}

/** The workflow facts of a message, read from the protocol headers it carries. */
export interface WorkflowFacts {
  runId: string;
  init: boolean;
  /** `step` (the default), `toCallback`, `fromCallback`, `failureCall`. */
  callType: string;
  url: string | null;
}

function first(headers: HeaderMap, name: string): string | undefined {
  const v = headers[name];
  return v && v.length ? v[0].split(",")[0].trim() : undefined;
}

/** The workflow facts of a message, or null when it belongs to no run. */
export function workflowFacts(headers: HeaderMap): WorkflowFacts | null {
  const runId = first(headers, "Upstash-Workflow-Runid");
  if (!runId) return null;
  return {
    runId,
    init: first(headers, "Upstash-Workflow-Init")?.toLowerCase() === "true",
    callType: first(headers, "Upstash-Workflow-Calltype") ?? "step",
    url: first(headers, "Upstash-Workflow-Url") ?? null,
  };
}

/**
 * Protocol headers are single-valued: the SDK sends some of them twice in different cases (`RunId` and `Runid`),
 * which a header map keeps as two values, and a destination would read as "a, a".
 */
export function singleWorkflowHeaders(headers: HeaderMap): void {
  for (const name of Object.keys(headers)) {
    if (name.startsWith("Upstash-Workflow-") || name === "Upstash-Feature-Set") headers[name] = headers[name].slice(0, 1);
  }
}

/** The R2 keys a run's history refers to (SQL over its row, for the delete that prunes it). */
export const RUN_REFS = "(SELECT json_group_array(h.value ->> '$.r') FROM json_each(history) h WHERE h.value ->> '$.r' IS NOT NULL)";

const COLUMNS = "tenant_id, run_id, url, state, created_at, completed_at, response, config, history, dlq_id, invoker";

function toRun(r: Record<string, unknown>): WorkflowRun {
  return {
    tenantId: String(r.tenant_id),
    runId: String(r.run_id),
    url: String(r.url),
    state: String(r.state) as RunState,
    createdAt: Number(r.created_at),
    completedAt: r.completed_at === null ? null : Number(r.completed_at),
    response: r.response === null ? null : String(r.response),
    config: JSON.parse(String(r.config)) as RunConfig,
    history: JSON.parse(String(r.history)) as StoredStep[],
    dlqId: r.dlq_id === null ? null : String(r.dlq_id),
    invoker: r.invoker === null || r.invoker === undefined ? null : (JSON.parse(String(r.invoker)) as Record<string, unknown>),
  };
}

export async function getRun(db: D1Database, tenantId: string, runId: string): Promise<WorkflowRun | null> {
  const r = await db.prepare(`SELECT ${COLUMNS} FROM workflow_runs WHERE tenant_id = ?1 AND run_id = ?2`).bind(tenantId, runId).first();
  return r ? toRun(r) : null;
}

export function stepOf(m: StoredMessage, callType: string, ref: string | null = null): StoredStep {
  return ref ? { m: m.id, c: callType, b: "", r: ref, z: m.body.byteLength } : { m: m.id, c: callType, b: bytesToBase64(m.body) };
}

/**
 * Starts a run with its first message as the first history element. A run id that is still running is not
 * started twice (the statement changes nothing; the caller answers `deduplicated`); a finished one starts again.
 */
export function startRun(db: D1Database, m: StoredMessage, url: string, config: RunConfig, now: number, invoker: Record<string, unknown> | null, first: StoredStep): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO workflow_runs (tenant_id, run_id, url, state, created_at, config, history, invoker)
       VALUES (?1, ?2, ?3, 'RUN_STARTED', ?4, ?5, json_array(json(?6)), ?7)
       ON CONFLICT (tenant_id, run_id) DO UPDATE SET url = excluded.url, state = 'RUN_STARTED', created_at = excluded.created_at,
         completed_at = NULL, response = NULL, config = excluded.config, history = excluded.history, dlq_id = NULL, invoker = excluded.invoker
       WHERE workflow_runs.state <> 'RUN_STARTED'`,
    )
    .bind(m.tenantId, workflowFacts(m.headers)!.runId, url, now, JSON.stringify(config), JSON.stringify(first), invoker ? JSON.stringify(invoker) : null);
}

/** Appends a message of a running run to its history (in the commit that stores the message). */
export function appendStep(db: D1Database, tenantId: string, runId: string, step: StoredStep): D1PreparedStatement {
  return db
    .prepare(`UPDATE workflow_runs SET history = json_insert(history, '$[#]', json(?3)) WHERE tenant_id = ?1 AND run_id = ?2 AND state = 'RUN_STARTED'`)
    .bind(tenantId, runId, JSON.stringify(step));
}

/** Ends a running run; false when it was not running (already ended, or unknown). */
export async function endRun(
  db: D1Database,
  tenantId: string,
  runId: string,
  state: Exclude<RunState, "RUN_STARTED">,
  now: number,
  extra: { response?: string | null; dlqId?: string | null } = {},
): Promise<boolean> {
  const r = await db
    .prepare(
      `UPDATE workflow_runs SET state = ?3, completed_at = ?4, response = coalesce(?5, response), dlq_id = coalesce(?6, dlq_id)
       WHERE tenant_id = ?1 AND run_id = ?2 AND state = 'RUN_STARTED' RETURNING run_id`,
    )
    .bind(tenantId, runId, state, now, extra.response ?? null, extra.dlqId ?? null)
    .first();
  return r !== null;
}

/** The statement form of endRun, for a commit that also records a message's outcome. */
export function endRunStatement(db: D1Database, tenantId: string, runId: string, state: Exclude<RunState, "RUN_STARTED">, now: number, dlqId: string | null): D1PreparedStatement {
  return db
    .prepare(`UPDATE workflow_runs SET state = ?3, completed_at = ?4, dlq_id = coalesce(?5, dlq_id) WHERE tenant_id = ?1 AND run_id = ?2 AND state = 'RUN_STARTED'`)
    .bind(tenantId, runId, state, now, dlqId);
}

export interface RunFilter {
  runIds?: string[];
  state?: string;
  url?: string;
  urlExact?: boolean;
  label?: string;
  createdAt?: number;
  fromDate?: number;
  toDate?: number;
}

/** Runs of a tenant, newest first, `count` per page, with a cursor (`<created_at>.<run id>`) for the next. */
export async function listRuns(db: D1Database, tenantId: string, f: RunFilter, count: number, cursor: string | null): Promise<{ runs: WorkflowRun[]; cursor: string | null }> {
  const where = ["tenant_id = ?1"];
  const params: unknown[] = [tenantId];
  const p = (v: unknown) => {
    params.push(v);
    return `?${params.length}`;
  };
  if (f.runIds?.length) where.push(`run_id IN (SELECT value FROM json_each(${p(JSON.stringify(f.runIds))}))`);
  if (f.state) where.push(`state = ${p(f.state)}`);
  if (f.url) where.push(f.urlExact ? `url = ${p(f.url)}` : `substr(url, 1, length(${p(f.url)})) = ${p(f.url)}`);
  if (f.label) where.push(`EXISTS (SELECT 1 FROM json_each(config, '$.labels') l WHERE l.value = ${p(f.label)})`);
  if (f.createdAt !== undefined) where.push(`created_at = ${p(f.createdAt)}`);
  if (f.fromDate !== undefined) where.push(`created_at >= ${p(f.fromDate)}`);
  if (f.toDate !== undefined) where.push(`created_at <= ${p(f.toDate)}`);
  if (cursor) {
    const m = /^(\d+)\.(.+)$/.exec(cursor);
    if (m) where.push(`(created_at, run_id) < (${p(Number(m[1]))}, ${p(m[2])})`);
  }
  const { results } = await db
    .prepare(`SELECT ${COLUMNS} FROM workflow_runs WHERE ${where.join(" AND ")} ORDER BY created_at DESC, run_id DESC LIMIT ${count + 1}`)
    .bind(...params)
    .all();
  const runs = results.slice(0, count).map(toRun);
  const last = runs[runs.length - 1];
  return { runs, cursor: results.length > count && last ? `${last.createdAt}.${last.runId}` : null };
}

/** The elements a delivery of `messageId` carries: every one up to and including that message's. */
export function historyUpTo(run: WorkflowRun, messageId: string): StoredStep[] {
  const at = run.history.findIndex((s) => s.m === messageId);
  return at < 0 ? run.history : run.history.slice(0, at + 1);
}

/** Bytes of the history elements as sent (base64 bodies), R2 ones included. */
export function historyBytes(steps: StoredStep[]): number {
  return steps.reduce((n, s) => n + s.m.length + s.c.length + 48 + (s.r ? Math.ceil((s.z ?? 0) / 3) * 4 : s.b.length), 0);
}

/** A new run that starts as a copy of `run` with part of its history (a resume from the DLQ). */
export function insertRunCopy(db: D1Database, run: WorkflowRun, runId: string, config: RunConfig, history: StoredStep[], now: number): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO workflow_runs (tenant_id, run_id, url, state, created_at, config, history, invoker)
       VALUES (?1, ?2, ?3, 'RUN_STARTED', ?4, ?5, ?6, ?7)`,
    )
    .bind(run.tenantId, runId, run.url, now, JSON.stringify(config), JSON.stringify(history), run.invoker ? JSON.stringify(run.invoker) : null);
}

/** When each of `runIds` started (runs that are not stored are left out). */
export async function runsCreatedAt(db: D1Database, tenantId: string, runIds: string[]): Promise<Map<string, number>> {
  if (!runIds.length) return new Map();
  const { results } = await db
    .prepare("SELECT run_id, created_at FROM workflow_runs WHERE tenant_id = ?1 AND run_id IN (SELECT value FROM json_each(?2))")
    .bind(tenantId, JSON.stringify([...new Set(runIds)]))
    .all<{ run_id: string; created_at: number }>();
  return new Map(results.map((r) => [r.run_id, Number(r.created_at)]));
}

/** A message of a running run that is not delivered yet: the step under way, waiting for its time, or retrying. */
export interface PendingStep {
  id: string;
  state: string;
  maxRetries: number;
  retryDelay: string | null;
  log: string;
}

/**
 * For each running run of `runs`, those of its newest history elements (at most 20: a parallel group's width) that
 * are not delivered yet; one query for the whole page of runs.
 */
export async function pendingSteps(db: D1Database, tenantId: string, runs: WorkflowRun[]): Promise<Map<string, PendingStep[]>> {
  const runOf = new Map<string, string>();
  for (const run of runs) if (run.state === "RUN_STARTED") for (const s of run.history.slice(-20)) runOf.set(s.m, run.runId);
  const out = new Map<string, PendingStep[]>();
  if (!runOf.size) return out;
  const { results } = await db
    .prepare(
      `SELECT id, state, max_retries, retry_delay_expr, log FROM messages
       WHERE id IN (SELECT value FROM json_each(?2)) AND tenant_id = ?1 AND finished_at IS NULL ORDER BY id`,
    )
    .bind(tenantId, JSON.stringify([...runOf.keys()]))
    .all<Record<string, unknown>>();
  for (const r of results) {
    const step = { id: String(r.id), state: String(r.state), maxRetries: Number(r.max_retries), retryDelay: r.retry_delay_expr === null ? null : String(r.retry_delay_expr), log: String(r.log) };
    const runId = runOf.get(step.id)!;
    (out.get(runId) ?? out.set(runId, []).get(runId)!).push(step);
  }
  return out;
}
