/** The dead-letter queue table, read joined with the failed message. */
import { blobToBytes } from "../core/encoding";
import { badRequest } from "../core/errors";
import type { Filters } from "../core/filters";
import type { HeaderMap } from "../core/headers";
import type { DlqEntry, StoredMessage } from "../core/types";
import { guardedValues, type LeaseGuard } from "./lease";
import { rowToMessage } from "./messages";
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
  d.response_body AS d_response_body, d.response_body_ref AS d_response_body_ref, d.error AS d_error, m.*
  FROM dlq d JOIN messages m ON m.id = d.message_id`;

export type DlqItem = { entry: DlqEntry; message: StoredMessage };

export async function getDlq(db: D1Database, tenantId: string, dlqId: string): Promise<DlqItem | null> {
  const row = await db.prepare(`${SELECT} WHERE d.tenant_id = ?1 AND d.dlq_id = ?2`).bind(tenantId, dlqId).first<Row>();
  return row ? { entry: rowToDlq(row), message: rowToMessage(row) } : null;
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
