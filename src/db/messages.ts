/** The messages table: one row per message, kept after it ends so logs and the DLQ can show it. */
import { blobToBytes, bytesToHex, hexToBytes } from "../core/encoding";
import { timeOfId } from "../core/ids";
import type { MessageState, StoredMessage } from "../core/types";
import { guardedValues, type LeaseGuard } from "./lease";
import { appendLog, createdLog, type EntryInput, entryJson } from "./logs";

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
    body: typeof r.body_hex === "string" ? hexToBytes(r.body_hex) : blobToBytes(r.body),
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
    ...(r.log_bytes != null ? { logBytes: Number(r.log_bytes) } : {}),
  };
}

const nullIfEmpty = <T>(v: T | null | undefined): T | null => (v === undefined ? null : v);

const COLUMNS = `id, tenant_id, kind, parent_id, url, method, headers, body, max_retries,
  retry_delay_expr, timeout_ms, not_before, created_at, callback, failure_callback, callback_config,
  failure_callback_config, topic_name, endpoint_name, queue_name, schedule_id, caller_ip, labels,
  flow_control, extra, state, retried, due_at, held, redacted, body_ref, anchor_at, watch, log`;

/**
 * Bodies up to this size are read as hex. D1 caps a value at 2 MB, and the hex of a body is twice its size: a larger
 * body (inline only when INLINE_BODY_MAX is raised that far) comes as a BLOB.
 */
const BODY_HEX_MAX = 512 * 1024;

/**
 * Every column but the log (which list pages and deliveries read only in part, or not at all), of `messages` under
 * `alias` if given. The body comes as `body_hex` (`hexToBytes`) up to BODY_HEX_MAX bytes: D1 answers a BLOB as an
 * array of numbers, one per byte, several times the size of its hex to serialize and parse, and every delivery reads
 * its message's body.
 */
export function messageColumns(alias?: string): string {
  const a = alias ? `${alias}.` : "";
  const small = `length(${a}body) <= ${BODY_HEX_MAX}`;
  return `${a}id, ${a}tenant_id, ${a}kind, ${a}parent_id, ${a}url, ${a}method, ${a}headers,
  CASE WHEN ${small} THEN hex(${a}body) END AS body_hex, CASE WHEN ${small} THEN NULL ELSE ${a}body END AS body, ${a}max_retries,
  ${a}retry_delay_expr, ${a}timeout_ms, ${a}not_before, ${a}created_at, ${a}callback, ${a}failure_callback, ${a}callback_config,
  ${a}failure_callback_config, ${a}topic_name, ${a}endpoint_name, ${a}queue_name, ${a}schedule_id, ${a}caller_ip, ${a}labels,
  ${a}flow_control, ${a}extra, ${a}state, ${a}retried, ${a}due_at, ${a}held, ${a}redacted, ${a}body_ref, ${a}lease_until,
  ${a}cancel_requested, ${a}finished_at, ${a}redriven_at`;
}

/** A row as deliveries read it: every column but the log, and the log's size. */
const ROW = `${messageColumns()}, length(log) AS log_bytes`;
const ROW_OF = (alias: string) => `${messageColumns(alias)}, length(${alias}.log) AS log_bytes`;

/** A message inserted with an id made this long before the insert is watched from the start (see `watched`). */
const LATE_ID_MS = 5_000;

/**
 * Whether a new message goes into `messages_watch`, the sweeper's index of unfinished work that is off the common
 * path: delayed, held by a gate, or carrying an id from the past (a schedule fire or DLQ retry made late), which
 * the sweeper's walk over recent ids may already have passed. A message due at once is not watched: if its
 * hand-off is lost, that walk finds it (src/delivery/sweeper.ts).
 */
function watched(m: StoredMessage): boolean {
  return m.held || m.dueAt > m.createdAt || timeOfId(m.id) < Date.now() - LATE_ID_MS;
}

/** The column values of a message row, in COLUMNS order (the body as bytes, or null when it lives in R2). */
function rowValues(m: StoredMessage): unknown[] {
  return [
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
    m.createdAt,
    watched(m) ? 1 : 0,
    createdLog(m),
  ];
}

/**
 * INSERT for a new message; `ON CONFLICT DO NOTHING` makes a replayed insert harmless. With `guard` (a callback
 * written with its source's outcome), nothing is inserted unless the source still holds that lease.
 */
export function insertMessage(db: D1Database, m: StoredMessage, guard?: LeaseGuard): D1PreparedStatement {
  const values = rowValues(m);
  const tail = guardedValues(values.length, guard);
  return db.prepare(`INSERT INTO messages (${COLUMNS}) ${tail.sql} ON CONFLICT (id) DO NOTHING`).bind(...values, ...tail.params);
}

/** Where an attempt leaves its message: finished in a terminal state (at `now`), or waiting for its next attempt. */
export type Transition = { to: "DELIVERED" | "FAILED" | "CANCELED" } | { to: "RETRY"; dueAt: number };

/**
 * The UPDATE that moves a message out of its attempt and appends its log entries, only if it still holds the lease
 * and the retries in `guard` and is unfinished. It returns the id when it applied; an outcome puts it after its other
 * (guarded) writes, which need the lease too. A message waiting for a retry is watched by the sweeper
 * (messages_watch). With `activeAt`, the attempt's claim wrote nothing: its ACTIVE entry goes first, at that time.
 */
export function transition(
  db: D1Database,
  guard: LeaseGuard,
  t: Transition,
  entries: EntryInput[],
  now: number,
  activeAt: number | null = null,
): D1PreparedStatement {
  const where = "WHERE id = ?1 AND lease_until IS ?2 AND retried = ?3 AND finished_at IS NULL RETURNING id";
  const values = entries.map(entryJson);
  const active = activeAt === null ? [] : [ACTIVE_ENTRY];
  const log = appendLog("?5", [...active, ...values.map((_, i) => `?${7 + i}`)], activeAt === null ? undefined : "?6");
  const head = [guard.id, guard.leaseUntil, guard.retried];
  if (t.to === "RETRY") {
    return db
      .prepare(`UPDATE messages SET state = 'RETRY', retried = retried + 1, due_at = ?4, lease_until = NULL, watch = 1, ${log} ${where}`)
      .bind(...head, t.dueAt, now, activeAt, ...values);
  }
  return db
    .prepare(`UPDATE messages SET state = ?4, finished_at = ?5, lease_until = NULL, ${log} ${where}`)
    .bind(...head, t.to, now, activeAt, ...values);
}

const ACTIVE_ENTRY = `'{"s":"ACTIVE"}'`;

/** An attempt that ended DELIVERED with one log entry: what `transition` takes for it, and when it ended. */
export interface Delivered {
  guard: LeaseGuard;
  entry: EntryInput;
  activeAt: number | null;
  now: number;
}

/**
 * The UPDATEs of `transition` with `{ to: "DELIVERED" }` for many attempts: one statement for those whose claim wrote
 * their ACTIVE entry, one for the others, each over up to MULTI_ROW_MAX rows (a JSON object each, bound as a parameter
 * of its own, as `insertMessages` binds its rows). A D1 batch pays for each statement, so the outcomes of a group
 * commit, most of them deliveries, cost one or two statements instead of one each. Each row applies under the same
 * conditions as `transition`, and the statement returns the ids it applied to.
 */
export function transitionsDelivered(db: D1Database, list: Delivered[]): D1PreparedStatement[] {
  const where = `messages.id = r.column1 ->> '$.id' AND messages.lease_until IS (r.column1 ->> '$.l') AND messages.retried = (r.column1 ->> '$.r')
       AND messages.finished_at IS NULL RETURNING messages.id AS id`;
  const time = "(r.column1 ->> '$.t')";
  const entry = "(r.column1 ->> '$.e')";
  const out: D1PreparedStatement[] = [];
  for (const active of [true, false]) {
    const rows = list.filter((d) => (d.activeAt !== null) === active);
    const log = active ? appendLog(time, [ACTIVE_ENTRY, entry], "(r.column1 ->> '$.a')") : appendLog(time, [entry]);
    for (let at = 0; at < rows.length; at += MULTI_ROW_MAX) {
      const params = rows
        .slice(at, at + MULTI_ROW_MAX)
        .map((d) => JSON.stringify({ id: d.guard.id, l: d.guard.leaseUntil, r: d.guard.retried, t: d.now, a: d.activeAt, e: entryJson(d.entry) }));
      out.push(db.prepare(`UPDATE messages SET state = 'DELIVERED', finished_at = ${time}, lease_until = NULL, ${log} FROM (VALUES ${valuesList(params.length)}) r WHERE ${where}`).bind(...params));
    }
  }
  return out;
}

/** A multi-row statement carries at most this much JSON (D1 caps a value at 2 MB and a statement at 100 KB of SQL). */
const MULTI_ROW_JSON_MAX = 800_000;
/** …and at most this many rows, one bound parameter each (D1 allows 100 per statement). */
const MULTI_ROW_MAX = 100;

/** `(?1), (?2), …` for `n` rows, each one bound parameter: the VALUES list, `r.column1`, of a multi-row statement. */
const valuesList = (n: number): string => Array.from({ length: n }, (_, i) => `(?${i + 1})`).join(", ");

/** The SELECT list that reads `COLUMNS` from each row's JSON array, `r.column1` (the body as hex, decoded by `unhex`). */
const INSERT_SELECT = COLUMNS.split(",")
  .map((c, i) => (c.trim() === "body" ? `unhex(json_extract(r.column1, '$[${i}]'))` : `json_extract(r.column1, '$[${i}]')`))
  .join(", ");

/**
 * Statements that insert many messages (each with its CREATED log entry): one per chunk of up to MULTI_ROW_MAX rows,
 * each row a JSON array bound as a parameter of its own and read from a VALUES list, instead of one statement per
 * message. A fan-out to 1,000 endpoints or a batch of 1,000 entries thus stays far below D1's per-invocation query
 * limit. Rows are not sent as one JSON array read with `json_each`: SQLite then writes each element back out as JSON
 * text before reading its fields, which took the local runtime's thread more time than reading the fields did
 * (bench/README.md, 2026-12-04, before midnight). Replayed inserts are harmless: an existing id is skipped.
 */
export function insertMessages(db: D1Database, messages: StoredMessage[]): D1PreparedStatement[] {
  const stmts: D1PreparedStatement[] = [];
  let chunk: string[] = [];
  let size = 0;
  const flush = () => {
    if (chunk.length === 0) return;
    stmts.push(db.prepare(`INSERT INTO messages (${COLUMNS}) SELECT ${INSERT_SELECT} FROM (VALUES ${valuesList(chunk.length)}) r WHERE true ON CONFLICT (id) DO NOTHING`).bind(...chunk));
    chunk = [];
    size = 0;
  };
  for (const m of messages) {
    const values = rowValues(m).map((v) => (v instanceof Uint8Array ? bytesToHex(v) : v));
    const row = JSON.stringify(values);
    if (size + row.length > MULTI_ROW_JSON_MAX || chunk.length >= MULTI_ROW_MAX) flush();
    chunk.push(row);
    size += row.length;
  }
  flush();
  return stmts;
}

/** A message of this tenant that is still in flight (not terminal), or null. */
export async function getPendingMessage(db: D1Database, tenantId: string, id: string): Promise<StoredMessage | null> {
  const row = await db
    .prepare(`SELECT ${ROW} FROM messages WHERE id = ?1 AND +tenant_id = ?2 AND finished_at IS NULL`)
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
      `SELECT ${ROW_OF("m")}, k.current_key AS signing_key FROM messages m
       JOIN signing_keys k ON k.tenant_id = m.tenant_id WHERE m.id = ?1`,
    )
    .bind(id)
    .first<Row>();
  return row ? { message: rowToMessage(row), signingKey: String(row.signing_key) } : null;
}

/**
 * A SELECT over a tenant's unfinished messages matching `cond` (alias m, `?T` for the tenant), without a scan of
 * its finished ones: the watched ones through messages_watch, the others among the ids after the sweeper's walk
 * (every unfinished message the walk has passed is watched, see src/delivery/sweeper.ts). `?C` is that walk's
 * cursor. Each part reads at most `limit` rows when `limit` is given.
 */
function unfinishedOf(cond: string, columns: string, limit?: number): string {
  const lim = limit === undefined ? "" : ` ORDER BY m.due_at LIMIT ${limit}`;
  // The unary + keeps the planner off messages_tenant, whose entries include every finished message.
  return `SELECT * FROM (SELECT ${columns} FROM messages m INDEXED BY messages_watch
      WHERE m.finished_at IS NULL AND m.watch = 1 AND +m.tenant_id = ?T AND ${cond}${lim})
    UNION ALL
    SELECT * FROM (SELECT ${columns} FROM messages m
      WHERE m.id > ?C AND m.watch = 0 AND m.finished_at IS NULL AND +m.tenant_id = ?T AND ${cond}${lim})`;
}

/** The sweeper's walk position, as `unfinishedOf` needs it. */
async function walkCursor(db: D1Database): Promise<string> {
  const row = await db.prepare("SELECT value FROM sweeper_state WHERE name = 'watch_cursor'").first<{ value: string }>();
  return row?.value ?? "";
}

/** Binds `?T` and `?C` after the other parameters (`n` of them). */
const numbered = (sql: string, n: number) => sql.replaceAll("?T", `?${n + 1}`).replaceAll("?C", `?${n + 2}`);

/** Ids of a tenant's pending, not yet cancel-requested messages matching a condition, oldest first. */
export async function selectPendingIds(
  db: D1Database,
  tenantId: string,
  where: { sql: string; params: unknown[] },
  limit: number,
): Promise<{ id: string; dueAt: number }[]> {
  const sql = unfinishedOf(`m.cancel_requested = 0 AND ${where.sql}`, "m.id, m.due_at", limit);
  const rows = await db
    .prepare(`SELECT id, due_at FROM (${numbered(sql, where.params.length)}) ORDER BY due_at LIMIT ${limit}`)
    .bind(...where.params, tenantId, await walkCursor(db))
    .all<{ id: string; due_at: number }>();
  return rows.results.map((r) => ({ id: r.id, dueAt: Number(r.due_at) }));
}

/**
 * Cancels pending messages: logs CANCEL_REQUESTED for each; those with no attempt under way become
 * CANCELED at once (an attempt under way completes, and the consumer then applies the cancel).
 * Returns how many were cancelled.
 */
export async function cancelMessages(db: D1Database, tenantId: string, ids: string[], now: number): Promise<number> {
  // Ids go in as one JSON parameter per chunk: 100,000 ids in one would pass D1's 2 MB value limit.
  let cancelled = 0;
  for (let i = 0; i < ids.length; i += CANCEL_CHUNK) cancelled += await cancelChunk(db, tenantId, ids.slice(i, i + CANCEL_CHUNK), now);
  return cancelled;
}

/**
 * Cancels every message of a tenant's queue that its gate has not admitted yet (held), in chunks, by queue name
 * in D1: it does not depend on what the queue's gate still holds. Returns how many were cancelled.
 */
export async function cancelHeldInQueue(db: D1Database, tenantId: string, queueName: string, now: number): Promise<number> {
  let total = 0;
  for (;;) {
    const ids = await selectPendingIds(db, tenantId, { sql: "m.queue_name = ?1 AND m.held = 1", params: [queueName] }, CANCEL_CHUNK);
    if (ids.length === 0) return total;
    total += await cancelMessages(db, tenantId, ids.map((r) => r.id), now);
    if (ids.length < CANCEL_CHUNK) return total;
  }
}

/** Ids per cancel statement (about 150 KB of JSON). */
const CANCEL_CHUNK = 5_000;

async function cancelChunk(db: D1Database, tenantId: string, ids: string[], now: number): Promise<number> {
  if (ids.length === 0) return 0;
  const list = JSON.stringify(ids);
  const sel = `+tenant_id = ?1 AND id IN (SELECT value FROM json_each(?2)) AND finished_at IS NULL`;
  const idle = `(lease_until IS NULL OR lease_until < ?3)`;
  const requested = appendLog("?3", [`'{"s":"CANCEL_REQUESTED"}'`]);
  const canceled = appendLog("?3", [`'{"s":"CANCELED"}'`]);
  const results = await db.batch([
    db
      .prepare(`UPDATE messages SET cancel_requested = 1, state = 'CANCEL_REQUESTED', ${requested} WHERE ${sel} AND cancel_requested = 0 RETURNING id`)
      .bind(tenantId, list, now),
    db
      .prepare(`UPDATE messages SET state = 'CANCELED', finished_at = ?3, ${canceled} WHERE ${sel} AND cancel_requested = 1 AND ${idle}`)
      .bind(tenantId, list, now),
  ]);
  // Counted from RETURNING: `meta.changes` would include the log marks its trigger writes.
  return results[0].results.length;
}

/** What cancelled messages free in the Gates (see src/delivery/release.ts), read in one D1 round trip. */
export async function cancelledGateHolders(
  db: D1Database,
  ids: string[],
): Promise<{
  held: { id: string; tenant_id: string; queue_name: string | null; flow_key: string | null }[];
  sources: { id: string; tenant_id: string; queue_name: string }[];
}> {
  const list = JSON.stringify(ids);
  const [held, sources] = await db.batch<Record<string, unknown>>([
    // Cancelled messages of a queue or flow-control key.
    db
      .prepare(
        `SELECT id, tenant_id, queue_name, json_extract(flow_control, '$.key') AS flow_key FROM messages
         WHERE id IN (SELECT value FROM json_each(?1)) AND state = 'CANCELED' AND (queue_name IS NOT NULL OR flow_control IS NOT NULL)`,
      )
      .bind(list),
    // Queued sources of cancelled callbacks that have finished and have no callback still open.
    db
      .prepare(
        `SELECT p.id, p.tenant_id, p.queue_name FROM messages p
         WHERE p.id IN (SELECT c.parent_id FROM messages c WHERE c.id IN (SELECT value FROM json_each(?1))
                          AND c.state = 'CANCELED' AND c.parent_id IS NOT NULL)
           AND p.queue_name IS NOT NULL AND p.finished_at IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.parent_id = p.id AND o.finished_at IS NULL)`,
      )
      .bind(list),
  ]);
  return {
    held: held.results as { id: string; tenant_id: string; queue_name: string | null; flow_key: string | null }[],
    sources: sources.results as { id: string; tenant_id: string; queue_name: string }[],
  };
}

/** Whether each message has finished, and how many of its callbacks are still open (a Gate's slot repair). */
export async function slotStates(db: D1Database, ids: string[]): Promise<{ id: string; finished_at: number | null; open_children: number }[]> {
  const { results } = await db
    .prepare(
      `SELECT p.id, p.finished_at,
         (SELECT count(*) FROM messages c WHERE c.parent_id = p.id AND c.finished_at IS NULL) AS open_children
       FROM messages p WHERE p.id IN (SELECT value FROM json_each(?1))`,
    )
    .bind(JSON.stringify(ids))
    .all<{ id: string; finished_at: number | null; open_children: number }>();
  return results;
}

/**
 * Puts unfinished messages into messages_watch at once, where the sweeper's re-drive finds them: for messages whose
 * hand-off to the queue is known to have failed.
 */
export async function watchMessages(db: D1Database, ids: string[]): Promise<void> {
  await db.prepare("UPDATE messages SET watch = 1 WHERE id IN (SELECT value FROM json_each(?1)) AND finished_at IS NULL").bind(JSON.stringify(ids)).run();
}

/** Marks messages admitted by their Gate: deliverable from now on. */
export async function unholdMessages(db: D1Database, ids: string[]): Promise<void> {
  await db.prepare("UPDATE messages SET held = 0 WHERE id IN (SELECT value FROM json_each(?1))").bind(JSON.stringify(ids)).run();
}

/**
 * Gives leases back: each message whose lease is still exactly the one given (so no outcome was written and no
 * other attempt took it since) becomes idle again, claimable by the next task for it.
 */
export async function releaseLeases(db: D1Database, leases: { id: string; leaseUntil: number }[]): Promise<void> {
  if (leases.length === 0) return;
  await db
    .prepare(
      `UPDATE messages SET state = CASE WHEN retried > 0 THEN 'RETRY' ELSE 'CREATED' END, lease_until = NULL
       WHERE finished_at IS NULL AND (id, lease_until) IN (SELECT value ->> '$.id', value ->> '$.leaseUntil' FROM json_each(?1))`,
    )
    .bind(JSON.stringify(leases))
    .run();
}

/**
 * The claim of a batch of ids, one D1 round trip of two statements over the rows that are due (at most `earlyMs`
 * early), idle (no live lease), unfinished, not cancel-requested and not held. Each returns the rows it takes
 * (without their logs) with their tenants' current signing keys:
 * 1. `written`: rows the sweeper has re-driven (`redriven_at` set), whose id may be in the queue twice. They become
 *    ACTIVE with a lease of their timeout plus `graceMs` and their ACTIVE entry, so two consumers holding the same
 *    id never both attempt it. Claiming clears `redriven_at`.
 * 2. `free`: every other row, read and not written (the common path: a message's claim costs no row). Its attempt
 *    holds the lease it found, writes a lease of its own only if it runs long (`leaseStatement`), and appends its
 *    ACTIVE entry with its outcome.
 */
export function claimStatements(
  db: D1Database,
  ids: string[],
  now: number,
  o: { maxTimeoutMs: number; graceMs: number; earlyMs: number },
): { written: D1PreparedStatement; free: D1PreparedStatement } {
  const lease = "?2 + COALESCE(timeout_ms, ?3) + ?4";
  const claimable = (early: string) => `id IN (SELECT value FROM json_each(?1)) AND finished_at IS NULL AND cancel_requested = 0
           AND held = 0 AND due_at <= ?2 + ${early} AND (lease_until IS NULL OR lease_until < ?2)`;
  const key = "(SELECT current_key FROM signing_keys k WHERE k.tenant_id = messages.tenant_id) AS signing_key";
  const list = JSON.stringify(ids);
  return {
    written: db
      .prepare(
        `UPDATE messages SET state = 'ACTIVE', lease_until = ${lease}, redriven_at = NULL, ${appendLog("?2", [ACTIVE_ENTRY])}
         WHERE ${claimable("?5")} AND redriven_at IS NOT NULL
         RETURNING ${ROW}, ${key}`,
      )
      .bind(list, now, o.maxTimeoutMs, o.graceMs, o.earlyMs),
    free: db
      .prepare(`SELECT ${ROW}, ${key} FROM messages WHERE ${claimable("?3")} AND redriven_at IS NULL`)
      .bind(list, now, o.earlyMs),
  };
}

/**
 * The lease an attempt whose claim wrote nothing takes once it runs long (`startedAt` + its timeout + `graceMs`),
 * with its ACTIVE entry at `startedAt`: from then on the log shows it under way, a cancel waits for it, and the
 * sweeper leaves it alone. It applies only while the row still holds the lease and retries the attempt began with,
 * unfinished and not cancel-requested, and returns the new lease when it did.
 */
export function leaseStatement(db: D1Database, guard: LeaseGuard, startedAt: number, o: { maxTimeoutMs: number; graceMs: number }): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE messages SET state = 'ACTIVE', lease_until = ?4 + COALESCE(timeout_ms, ?5) + ?6, ${appendLog("?4", [ACTIVE_ENTRY])}
       WHERE id = ?1 AND lease_until IS ?2 AND retried = ?3 AND finished_at IS NULL AND cancel_requested = 0
       RETURNING lease_until`,
    )
    .bind(guard.id, guard.leaseUntil, guard.retried, startedAt, o.maxTimeoutMs, o.graceMs);
}

/** Whether a cancel was requested for a message (while its attempt ran). */
export async function cancelRequested(db: D1Database, id: string): Promise<boolean> {
  return (await db.prepare("SELECT cancel_requested FROM messages WHERE id = ?1").bind(id).first<number>("cancel_requested")) === 1;
}

/** What decides whether a queued message still holds its queue slot: finished, and callbacks still open. */
export async function queuedSourceState(
  db: D1Database,
  id: string,
): Promise<{ tenant_id: string; queue_name: string | null; finished_at: number | null; open_children: number } | null> {
  return db
    .prepare(
      `SELECT p.tenant_id, p.queue_name, p.finished_at,
         (SELECT count(*) FROM messages c WHERE c.parent_id = p.id AND c.finished_at IS NULL) AS open_children
       FROM messages p WHERE p.id = ?1`,
    )
    .bind(id)
    .first<{ tenant_id: string; queue_name: string | null; finished_at: number | null; open_children: number }>();
}

/** The tenant of each of `ids` that exists. */
export async function tenantsOf(db: D1Database, ids: string[]): Promise<Map<string, string>> {
  const { results } = await db
    .prepare("SELECT id, tenant_id FROM messages WHERE id IN (SELECT value FROM json_each(?1))")
    .bind(JSON.stringify(ids))
    .all<{ id: string; tenant_id: string }>();
  return new Map(results.map((r) => [r.id, r.tenant_id]));
}

/** How many of a tenant's messages have an attempt under way (a live lease). */
export async function attemptsUnderWay(db: D1Database, tenantId: string, now: number): Promise<number> {
  const n = await db
    .prepare(`SELECT count(*) AS n FROM (${numbered(unfinishedOf("m.lease_until > ?1", "m.id"), 1)})`)
    .bind(now, tenantId, await walkCursor(db))
    .first<number>("n");
  return Number(n ?? 0);
}
