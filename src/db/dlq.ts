/** The dead-letter queue table, read joined with the failed message. */
import { blobToBytes } from "../core/encoding";
import { badRequest } from "../core/errors";
import type { Filters } from "../core/filters";
import type { HeaderMap } from "../core/headers";
import type { DlqEntry, FailureCallbackInfo, RunFacts, StoredMessage } from "../core/types";
import { guardedValues, type LeaseGuard } from "./lease";
import { entriesOf } from "./logs";
import { runsCreatedAt } from "./workflow-runs";
import { messageColumns, rowToMessage } from "./messages";
import { type RowSize, fitPage } from "./pages";
import { WhereBuilder, messageConditions } from "./where";

type Row = Record<string, unknown>;

/** INSERT of a DLQ entry; with `guard`, only while the failed message holds that lease (see lease.ts). */
export function insertDlq(db: D1Database, d: Omit<DlqEntry, "seq">, guard?: LeaseGuard): D1PreparedStatement {
  const tail = guardedValues(9, guard);
  return db
    .prepare(
      `INSERT INTO dlq (dlq_id, tenant_id, message_id, created_at, response_status, response_headers, response_body, error,
         response_body_ref) ${tail.sql}`,
    )
    .bind(
      d.dlqId,
      d.tenantId,
      d.messageId,
      d.createdAt,
      d.responseStatus,
      JSON.stringify(d.responseHeaders),
      d.responseBodyRef ? null : d.responseBody,
      d.error,
      d.responseBodyRef,
      ...tail.params,
    );
}

function rowToDlq(r: Row): DlqEntry {
  return {
    seq: Number(r.d_seq),
    dlqId: String(r.d_dlq_id),
    tenantId: String(r.d_tenant_id),
    messageId: String(r.d_message_id),
    createdAt: Number(r.d_created_at),
    responseStatus: Number(r.d_response_status),
    responseHeaders: r.d_response_headers == null ? {} : (JSON.parse(String(r.d_response_headers)) as HeaderMap),
    responseBody: blobToBytes(r.d_response_body),
    responseBodyRef: r.d_response_body_ref == null ? null : String(r.d_response_body_ref),
    error: r.d_error == null ? null : String(r.d_error),
  };
}

const SELECT = `SELECT d.seq AS d_seq, d.dlq_id AS d_dlq_id, d.tenant_id AS d_tenant_id, d.message_id AS d_message_id,
  d.created_at AS d_created_at, d.response_status AS d_response_status, d.response_headers AS d_response_headers,
  d.response_body AS d_response_body, d.response_body_ref AS d_response_body_ref, d.error AS d_error, ${messageColumns("m")}
  FROM dlq d JOIN messages m ON m.id = d.message_id`;

export type DlqItem = { entry: DlqEntry; message: StoredMessage };

export async function getDlq(db: D1Database, tenantId: string, dlqId: string): Promise<DlqItem | null> {
  const row = await db.prepare(`${SELECT} WHERE d.tenant_id = ?1 AND d.dlq_id = ?2`).bind(tenantId, dlqId).first<Row>();
  return row ? { entry: rowToDlq(row), message: rowToMessage(row) } : null;
}

/** Several DLQ entries by id, in one query (absent ids are left out). */
export async function getDlqs(db: D1Database, tenantId: string, dlqIds: string[]): Promise<Map<string, DlqItem>> {
  if (!dlqIds.length) return new Map();
  const { results } = await db
    .prepare(`${SELECT} WHERE d.tenant_id = ?1 AND d.dlq_id IN (SELECT value FROM json_each(?2))`)
    .bind(tenantId, JSON.stringify([...new Set(dlqIds)]))
    .all<Row>();
  return new Map(results.map((row) => [String(row.d_dlq_id), { entry: rowToDlq(row), message: rowToMessage(row) }]));
}

/** A page of DLQ entries matching the filters; the cursor is the last seq seen. */
export async function listDlq(
  db: D1Database,
  tenantId: string,
  f: Filters,
  pageSize: number,
): Promise<{ items: DlqItem[]; cursor: string | null }> {
  const w = new WhereBuilder();
  w.add((p) => `d.tenant_id = ${p(tenantId)}`);
  w.in("d.dlq_id", f.values.get("dlqIds"));
  w.in("d.message_id", f.values.get("messageId"));
  const statuses = f.values.get("responseStatus");
  if (statuses) {
    for (const s of statuses) if (!/^\d+$/.test(s)) throw badRequest(`responseStatus: "${s}" is not a status code`);
    w.in("d.response_status", statuses.map(Number));
  }
  // `source=workflow` (the Workflow SDK's DLQ list): entries of workflow runs only; `qstash`: the others.
  const source = f.values.get("source");
  if (source) {
    if (source.length !== 1 || !["workflow", "qstash"].includes(source[0])) throw badRequest(`source: "${source.join(",")}" must be workflow or qstash`);
    w.add(() => `json_extract(m.headers, '$."Upstash-Workflow-Runid"') IS ${source[0] === "workflow" ? "NOT NULL" : "NULL"}`);
  }
  // The Workflow SDK's filters: the run, when it started, and how the entry's failure callback went.
  const runExpr = `json_extract(m.headers, '$."Upstash-Workflow-Runid"[0]')`;
  w.in(runExpr, f.values.get("workflowRunId"));
  const started = f.values.get("workflowCreatedAt");
  if (started) {
    for (const s of started) if (!/^\d+$/.test(s)) throw badRequest(`workflowCreatedAt: "${s}" is not a time in milliseconds`);
    w.add((p) => `EXISTS (SELECT 1 FROM workflow_runs r WHERE r.tenant_id = d.tenant_id AND r.run_id = ${runExpr} AND r.created_at IN (SELECT value FROM json_each(${p(JSON.stringify(started.map(Number)))})))`);
  }
  const callbackStates = f.values.get("failureFunctionState");
  if (callbackStates) {
    const valid = ["CALLBACK_INPROGRESS", "CALLBACK_SUCCESS", "CALLBACK_FAIL", "CALLBACK_CANCELED"];
    for (const s of callbackStates) if (!valid.includes(s)) throw badRequest(`failureFunctionState: "${s}" must be one of ${valid.join(", ")}`);
    w.add((p) => `(${CALLBACK_STATE_SQL}) IN (SELECT value FROM json_each(${p(JSON.stringify(callbackStates))}))`);
  }
  if (f.fromDate !== null) w.add((p) => `d.created_at >= ${p(f.fromDate)}`);
  if (f.toDate !== null) w.add((p) => `d.created_at <= ${p(f.toDate)}`);
  if (f.cursor !== null) {
    if (!/^\d+$/.test(f.cursor)) throw badRequest(`cursor: "${f.cursor}" is not a cursor returned by this API`);
    w.add((p) => (f.order === "asc" ? `d.seq > ${p(f.cursor)}` : `d.seq < ${p(f.cursor)}`));
  }
  messageConditions(w, f);
  const dir = f.order === "asc" ? "ASC" : "DESC";
  // First the sizes of the candidate rows, then the rows that fit the page's byte budget (pages.ts).
  const sizes = await db
    .prepare(
      `SELECT d.seq AS key, coalesce(length(m.body), 0) + coalesce(length(d.response_body), 0) AS inline,
         (m.body_ref IS NOT NULL) + (d.response_body_ref IS NOT NULL) AS refs
       FROM dlq d JOIN messages m ON m.id = d.message_id WHERE ${w.toSql()} ORDER BY d.seq ${dir} LIMIT ${pageSize + 1}`,
    )
    .bind(...w.params)
    .all<RowSize>();
  const fit = fitPage(sizes.results, pageSize);
  if (fit.keys.length === 0) return { items: [], cursor: null };
  const rows = await db
    .prepare(`${SELECT} WHERE d.seq IN (SELECT value FROM json_each(?1)) ORDER BY d.seq ${dir}`)
    .bind(JSON.stringify(fit.keys))
    .all<Row>();
  const items = rows.results.map((r) => ({ entry: rowToDlq(r), message: rowToMessage(r) }));
  return { items, cursor: fit.more && items.length ? String(items[items.length - 1].entry.seq) : null };
}

export function deleteDlq(db: D1Database, tenantId: string, dlqIds: string[]): D1PreparedStatement {
  return db
    .prepare(`DELETE FROM dlq WHERE tenant_id = ?1 AND dlq_id IN (SELECT value FROM json_each(?2))`)
    .bind(tenantId, JSON.stringify(dlqIds));
}

const CALLBACK_STATES: Record<string, FailureCallbackInfo["state"]> = { DELIVERED: "CALLBACK_SUCCESS", FAILED: "CALLBACK_FAIL", CANCELED: "CALLBACK_CANCELED" };

/** SQL: the state of the newest failure callback of DLQ entry `d` (NULL when it has none), as CALLBACK_STATES names it. */
const CALLBACK_STATE_SQL = `SELECT CASE c.state ${Object.entries(CALLBACK_STATES).map(([k, v]) => `WHEN '${k}' THEN '${v}'`).join(" ")} ELSE 'CALLBACK_INPROGRESS' END
  FROM messages c WHERE c.parent_id = d.message_id AND c.tenant_id = d.tenant_id AND c.kind = 'failure_callback' ORDER BY c.id DESC LIMIT 1`;

/**
 * The newest failure callback of each of `messageIds` (a DLQ page's failed messages), found through the
 * messages_parent index: its state, and the status, headers and body of its last answer.
 */
export async function failureCallbacks(db: D1Database, tenantId: string, messageIds: string[]): Promise<Map<string, FailureCallback>> {
  const out = new Map<string, FailureCallback>();
  if (!messageIds.length) return out;
  const { results } = await db
    .prepare(
      `SELECT id, url, parent_id, state, log FROM messages WHERE parent_id IN (SELECT value FROM json_each(?2)) AND tenant_id = ?1 AND kind = 'failure_callback'
       ORDER BY id`,
    )
    .bind(tenantId, JSON.stringify(messageIds))
    .all<{ id: string; url: string; parent_id: string; state: string; log: string }>();
  for (const r of results) {
    const info: FailureCallbackInfo = { state: CALLBACK_STATES[r.state] ?? "CALLBACK_INPROGRESS" };
    const answered = entriesOf({ id: r.id, tenantId }, r.log).filter((e) => e.responseStatus !== null).pop();
    if (answered) {
      info.responseStatus = answered.responseStatus!;
      if (answered.responseHeaders) info.responseHeaders = answered.responseHeaders;
      if (answered.responseBody) info.responseBody = new TextDecoder().decode(answered.responseBody);
    }
    out.set(r.parent_id, { messageId: r.id, url: r.url, info });
  }
  return out;
}

/** The newest failure callback of a failed message: its id, URL, and how it went. */
export interface FailureCallback {
  messageId: string;
  url: string;
  info: FailureCallbackInfo;
}

export async function runFacts(db: D1Database, tenantId: string, items: DlqItem[]): Promise<RunFacts> {
  const ofRuns = items.filter((i) => i.message.headers["Upstash-Workflow-Runid"]?.length);
  const [createdAt, callbacks] = await Promise.all([
    runsCreatedAt(db, tenantId, ofRuns.map((i) => i.message.headers["Upstash-Workflow-Runid"][0])),
    failureCallbacks(db, tenantId, ofRuns.map((i) => i.message.id)),
  ]);
  return { createdAt, callbacks: new Map([...callbacks].map(([id, c]) => [id, c.info])) };
}
