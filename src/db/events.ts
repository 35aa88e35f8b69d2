/** The events table: one row per state transition, read by the logs API joined with its message. */
import { blobToBytes } from "../core/encoding";
import { badRequest } from "../core/errors";
import type { Filters } from "../core/filters";
import type { HeaderMap } from "../core/headers";
import type { LogEvent, MessageState, StoredMessage } from "../core/types";
import { guardedValues, type LeaseGuard } from "./lease";
import { rowToMessage } from "./messages";
import { type RowSize, fitPage } from "./pages";
import { WhereBuilder, messageConditions } from "./where";

type Row = Record<string, unknown>;

export interface NewEvent {
  tenantId: string;
  messageId: string;
  time: number;
  state: MessageState;
  error?: string | null;
  nextDeliveryTime?: number | null;
  responseStatus?: number | null;
  responseHeaders?: HeaderMap | null;
  responseBody?: Uint8Array | null;
  /** Set when the response body lives in R2: the bytes are then not stored in the row. */
  responseBodyRef?: string | null;
}

/** INSERT of a log entry; with `guard`, only while that message holds that lease (see lease.ts). */
export function insertEvent(db: D1Database, e: NewEvent, guard?: LeaseGuard): D1PreparedStatement {
  const tail = guardedValues(10, guard);
  return db
    .prepare(
      `INSERT INTO events (tenant_id, message_id, time, state, error, next_delivery_time, response_status,
         response_headers, response_body, response_body_ref) ${tail.sql}`,
    )
    .bind(
      e.tenantId,
      e.messageId,
      e.time,
      e.state,
      e.error ?? null,
      e.nextDeliveryTime ?? null,
      e.responseStatus ?? null,
      e.responseHeaders ? JSON.stringify(e.responseHeaders) : null,
      e.responseBodyRef ? null : (e.responseBody ?? null),
      e.responseBodyRef ?? null,
      ...tail.params,
    );
}

function rowToEvent(r: Row): LogEvent {
  return {
    seq: Number(r.e_seq),
    tenantId: String(r.e_tenant_id),
    messageId: String(r.e_message_id),
    time: Number(r.e_time),
    state: String(r.e_state) as MessageState,
    error: r.e_error == null ? null : String(r.e_error),
    nextDeliveryTime: r.e_next_delivery_time == null ? null : Number(r.e_next_delivery_time),
    responseStatus: r.e_response_status == null ? null : Number(r.e_response_status),
    responseHeaders: r.e_response_headers == null ? null : (JSON.parse(String(r.e_response_headers)) as HeaderMap),
    responseBody: r.e_response_body == null ? null : blobToBytes(r.e_response_body),
    responseBodyRef: r.e_response_body_ref == null ? null : String(r.e_response_body_ref),
  };
}

const STATE_ALIASES: Record<string, string[]> = {
  IN_PROGRESS: ["ACTIVE", "RETRY", "ERROR"],
  CANCELLED: ["CANCELED"],
};

export interface EventPage {
  events: { event: LogEvent; message: StoredMessage }[];
  cursor: string | null;
}

/** A page of a tenant's log entries, newest first by default; the cursor is the last seq seen. */
export async function listEvents(db: D1Database, tenantId: string, f: Filters, pageSize: number): Promise<EventPage> {
  const w = new WhereBuilder();
  w.add((p) => `e.tenant_id = ${p(tenantId)}`);
  w.in("e.message_id", f.values.get("messageId"));
  const states = f.values.get("state")?.flatMap((s) => STATE_ALIASES[s.toUpperCase()] ?? [s.toUpperCase()]);
  w.in("e.state", states);
  if (f.fromDate !== null) w.add((p) => `e.time >= ${p(f.fromDate)}`);
  if (f.toDate !== null) w.add((p) => `e.time <= ${p(f.toDate)}`);
  if (f.cursor !== null) {
    if (!/^\d+$/.test(f.cursor)) throw badRequest(`cursor: "${f.cursor}" is not a cursor returned by this API`);
    w.add((p) => (f.order === "asc" ? `e.seq > ${p(f.cursor)}` : `e.seq < ${p(f.cursor)}`));
  }
  messageConditions(w, f);
  const dir = f.order === "asc" ? "ASC" : "DESC";
  const from = `FROM events e JOIN messages m ON m.id = e.message_id WHERE ${w.toSql()}`;
  // First the sizes of the candidate rows, then the rows that fit the page's byte budget (pages.ts).
  const sizes = await db
    .prepare(
      `SELECT e.seq AS key, coalesce(length(m.body), 0) + coalesce(length(e.response_body), 0) AS inline,
         (m.body_ref IS NOT NULL) + (e.response_body_ref IS NOT NULL) AS refs
       ${from} ORDER BY e.seq ${dir} LIMIT ${pageSize + 1}`,
    )
    .bind(...w.params)
    .all<RowSize>();
  const fit = fitPage(sizes.results, pageSize);
  if (fit.keys.length === 0) return { events: [], cursor: null };
  const rows = await db
    .prepare(
      `SELECT e.seq AS e_seq, e.tenant_id AS e_tenant_id, e.message_id AS e_message_id, e.time AS e_time,
         e.state AS e_state, e.error AS e_error, e.next_delivery_time AS e_next_delivery_time,
         e.response_status AS e_response_status, e.response_headers AS e_response_headers,
         e.response_body AS e_response_body, e.response_body_ref AS e_response_body_ref, m.*
       FROM events e JOIN messages m ON m.id = e.message_id
       WHERE e.seq IN (SELECT value FROM json_each(?1)) ORDER BY e.seq ${dir}`,
    )
    .bind(JSON.stringify(fit.keys))
    .all<Row>();
  const list = rows.results.map((r) => ({ event: rowToEvent(r), message: rowToMessage(r) }));
  return { events: list, cursor: fit.more && list.length ? String(list[list.length - 1].event.seq) : null };
}
