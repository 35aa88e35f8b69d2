/**
 * The log of a message: its entries are a JSON array in its own row (`messages.log`), appended by the same UPDATE
 * that changes its state, so a log entry costs no row of its own. The logs API lists a tenant's entries by time
 * across messages through anchors (docs/storage.md, "The log of a message"):
 * - every entry names an anchor `a`: its message's creation time, or a log mark;
 * - an entry is at most LOG_WINDOW_MS after its anchor and never before it;
 * - a message's creation anchor is found through `messages_tenant` (tenant, created_at); a mark is a row of
 *   `log_marks`, written (by a trigger) only when an entry comes more than LOG_WINDOW_MS after the newest anchor.
 * Walking anchors in time order, every entry more than LOG_WINDOW_MS beyond the walk's position is final.
 */
import { base64ToBytes, bytesToBase64, hexToBytes } from "../core/encoding";
import { badRequest } from "../core/errors";
import type { Filters } from "../core/filters";
import type { HeaderMap } from "../core/headers";
import type { LogEvent, MessageState, StoredMessage } from "../core/types";
import { messageColumns, rowToMessage } from "./messages";
import { PAGE_BODY_BUDGET, PAGE_BODY_MAX } from "./pages";
import { WhereBuilder, messageConditions } from "./where";

/** How far after its anchor an entry may be (migration 0011 uses the same 30 s). */
export const LOG_WINDOW_MS = 30_000;

/**
 * Past this many bytes of log JSON in a row, new entries keep their response bodies in R2 and at most 1 KB of
 * response headers, so that a row stays well below D1's 2 MB limit however many attempts a message gets.
 */
export const LOG_ROW_MAX = 1 << 20;

/** Response headers kept in a log entry: at most this much JSON (whole headers, in order; the rest is dropped). */
export const ENTRY_HEADERS_MAX = 16_384;

/** An entry as stored: short keys, absent fields left out. */
interface StoredEntry {
  /** time */
  t: number;
  /** anchor */
  a: number;
  /** state */
  s: string;
  /** error */
  e?: string | null;
  /** next delivery time */
  n?: number | null;
  /** response status */
  c?: number | null;
  /** response headers */
  h?: HeaderMap | null;
  /** response body, base64 */
  b?: string | null;
  /** response body, hex (entries moved over from the old events table) */
  x?: string | null;
  /** R2 key of the response body */
  r?: string | null;
  /** position in the message's log (added when read) */
  i?: number;
}

/** What a new entry says; its time and anchor are set by the statement that appends it. */
export interface EntryInput {
  state: MessageState;
  error?: string | null;
  nextDeliveryTime?: number | null;
  responseStatus?: number | null;
  responseHeaders?: HeaderMap | null;
  responseBody?: Uint8Array | null;
  /** Set when the response body lives in R2: the bytes are then not stored in the entry. */
  responseBodyRef?: string | null;
}

/** Whole headers, in order, while their JSON fits `max`. */
export function capHeaders(h: HeaderMap, max = ENTRY_HEADERS_MAX): HeaderMap {
  if (JSON.stringify(h).length <= max) return h;
  const out: HeaderMap = {};
  let size = 2;
  for (const [k, v] of Object.entries(h)) {
    const add = JSON.stringify(k).length + JSON.stringify(v).length + 2;
    if (size + add > max) continue;
    out[k] = v;
    size += add;
  }
  return out;
}

/** The JSON of an entry without its time and anchor. */
export function entryJson(e: EntryInput): string {
  const o: Record<string, unknown> = { s: e.state };
  if (e.error != null) o.e = e.error;
  if (e.nextDeliveryTime != null) o.n = e.nextDeliveryTime;
  if (e.responseStatus != null) o.c = e.responseStatus;
  if (e.responseHeaders) o.h = capHeaders(e.responseHeaders);
  if (e.responseBodyRef) o.r = e.responseBodyRef;
  else if (e.responseBody && e.responseBody.byteLength) o.b = bytesToBase64(e.responseBody);
  return JSON.stringify(o);
}

/** The first log of a message: its CREATED entry, anchored at its creation. */
export function createdLog(m: StoredMessage): string {
  const o: Record<string, unknown> = { t: m.createdAt, a: m.createdAt, s: "CREATED" };
  if (m.dueAt > m.createdAt) o.n = m.dueAt;
  return JSON.stringify([o]);
}

/**
 * SET clauses of an UPDATE on messages that append entries (SQL expressions of JSON text, e.g. `?5`) at `time` (an
 * SQL expression). An entry more than LOG_WINDOW_MS after the row's newest anchor moves the anchor forward (the
 * trigger of migration 0011 then writes the mark). Entries never go back before the newest anchor.
 *
 * With `firstAt` (an SQL expression no later than `time`, and less than LOG_WINDOW_MS before it), the first entry is
 * placed at that earlier moment: the ACTIVE entry of an attempt whose claim wrote nothing, recorded with its outcome.
 * A moved anchor is then the later of `firstAt` and `time` minus the window, so both entries stay within it.
 */
export function appendLog(time: string, entries: string[], firstAt?: string): string {
  const moved = firstAt === undefined ? time : `max(${firstAt}, ${time} - ${LOG_WINDOW_MS})`;
  const anchor = `(CASE WHEN ${time} > anchor_at + ${LOG_WINDOW_MS} THEN ${moved} ELSE anchor_at END)`;
  const pairs = entries
    .map((e, i) => `'$[#]', json_set(json(${e}), '$.t', max(${i === 0 && firstAt !== undefined ? firstAt : time}, ${anchor}), '$.a', ${anchor})`)
    .join(", ");
  return `log = json_insert(log, ${pairs}), anchor_at = ${anchor}`;
}

function toEvent(tenantId: string, messageId: string, x: StoredEntry): LogEvent {
  return {
    index: Number(x.i ?? 0),
    tenantId,
    messageId,
    time: Number(x.t),
    state: x.s as MessageState,
    error: x.e ?? null,
    nextDeliveryTime: x.n ?? null,
    responseStatus: x.c ?? null,
    responseHeaders: x.h ?? null,
    responseBody: x.b ? base64ToBytes(x.b) : x.x ? hexToBytes(x.x) : null,
    responseBodyRef: x.r ?? null,
  };
}

/** Every entry of a message's log (its row's `log` column). */
export function entriesOf(m: { id: string; tenantId: string }, log: string): LogEvent[] {
  return (JSON.parse(log) as StoredEntry[]).map((x, i) => toEvent(m.tenantId, m.id, { ...x, i }));
}

const STATE_ALIASES: Record<string, string[]> = {
  IN_PROGRESS: ["ACTIVE", "RETRY", "ERROR"],
  CANCELLED: ["CANCELED"],
};

export interface EventPage {
  events: { event: LogEvent; message: StoredMessage }[];
  cursor: string | null;
}

/** A position in the order of entries: time, then message id, then place in the message's log. */
interface Key {
  t: number;
  id: string;
  i: number;
}

function compareKeys(a: Key, b: Key): number {
  return a.t - b.t || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) || a.i - b.i;
}

const CURSOR_RE = /^(\d{1,16})\.(\d{1,6})\.(msg_[0-9A-Za-z_~]{0,120})$/;
const formatCursor = (k: Key): string => `${k.t}.${k.i}.${k.id}`;

function parseCursor(s: string): Key {
  const m = CURSOR_RE.exec(s);
  if (!m) throw badRequest(`cursor: "${s}" is not a cursor returned by this API`);
  return { t: Number(m[1]), i: Number(m[2]), id: m[3] };
}

/** An entry as the listing's first step reads it: its key, its state, and the size of its response body. */
interface Light extends Key {
  s: string;
  /** inline response body bytes */
  z: number;
  /** 1 when the response body is in R2 */
  r: number;
  /** the message's inline body bytes, and 1 when its body is in R2 */
  bz: number;
  br: number;
}

/** An anchor and the light entries it carries. */
interface AnchorRow {
  id: string;
  anchor: number;
  bz: number;
  br: number;
  light: string;
}

/**
 * Anchors read by a stream's first query (later queries read twice as many, up to ANCHOR_CHUNK_MAX: a filter that
 * matches little walks far in few queries), and at most per listing call (a page that reaches it ends early, with a
 * cursor).
 */
const ANCHOR_CHUNK = 250;
const ANCHOR_CHUNK_MAX = 1000;
const ANCHOR_BUDGET = 5_000;

/**
 * The light form of the entries of `log` whose anchor is `anchor` (null: every entry), and only those in the
 * states of the JSON array bound at `states` when given.
 */
function lightEntries(anchor: string | null, states: string | null = null): string {
  const where = [anchor ? `l.value ->> '$.a' = ${anchor}` : "", states ? `l.value ->> '$.s' IN (SELECT value FROM json_each(${states}))` : ""].filter(Boolean);
  return `(SELECT json_group_array(json_object('i', l.key, 't', l.value ->> '$.t', 's', l.value ->> '$.s',
      'z', coalesce(length(l.value ->> '$.b') * 3 / 4, length(l.value ->> '$.x') / 2, 0), 'r', (l.value ->> '$.r') IS NOT NULL))
    FROM json_each(m.log) l${where.length ? ` WHERE ${where.join(" AND ")}` : ""})`;
}

/**
 * A page of a tenant's log entries, newest first by default, across all its messages. The cursor names the last
 * entry of the page (time, entry, message). A page cut short by the anchor budget or the byte budget has a cursor
 * too; a page may then hold fewer entries than asked for, even none.
 */
export async function listEvents(
  db: D1Database,
  tenantId: string,
  f: Filters,
  pageSize: number,
  now: number,
  retentionMs: number,
): Promise<EventPage> {
  const desc = f.order !== "asc";
  const cursor = f.cursor !== null ? parseCursor(f.cursor) : null;
  const minT = Math.max(f.fromDate ?? 0, now - retentionMs);
  const maxT = f.toDate ?? Number.MAX_SAFE_INTEGER;
  const states = f.values.get("state")?.flatMap((s) => STATE_ALIASES[s.toUpperCase()] ?? [s.toUpperCase()]);
  const stateSet = states ? new Set(states) : null;
  const accept = (e: Light): boolean => {
    if (e.t < minT || e.t > maxT) return false;
    if (stateSet && !stateSet.has(e.s)) return false;
    if (cursor && (desc ? compareKeys(e, cursor) >= 0 : compareKeys(e, cursor) <= 0)) return false;
    return true;
  };
  const found: Light[] = [];
  const take = (r: AnchorRow) => {
    for (const x of JSON.parse(r.light) as { i: number; t: number; s: string; z: number; r: number }[]) {
      const e: Light = { t: Number(x.t), id: r.id, i: Number(x.i), s: x.s, z: Number(x.z) || 0, r: Number(x.r) || 0, bz: r.bz, br: r.br };
      if (accept(e)) found.push(e);
    }
  };
  const order = (a: Key, b: Key) => (desc ? compareKeys(b, a) : compareKeys(a, b));

  let boundary: Key | null = null; // where the next call goes on when the anchor budget ran out
  const ids = f.values.get("messageId");
  if (ids && ids.length) {
    // Named messages: read their whole logs.
    const w = new WhereBuilder();
    w.add((p) => `+m.tenant_id = ${p(tenantId)}`); // "+": by id (primary key), not by messages_tenant
    w.in("m.id", ids);
    messageConditions(w, f);
    const { results } = await db
      .prepare(
        `SELECT m.id, 0 AS anchor, coalesce(length(m.body), 0) AS bz, m.body_ref IS NOT NULL AS br, ${lightEntries(null)} AS light
         FROM messages m WHERE ${w.toSql()}`,
      )
      .bind(...w.params)
      .all<AnchorRow>();
    for (const r of results) take(r);
  } else {
    // Anchors from both sources, merged in time order. An anchor's entries are in [anchor, anchor + window].
    const lo = desc ? minT - LOG_WINDOW_MS : Math.max(minT, cursor ? cursor.t : 0) - LOG_WINDOW_MS;
    const hi = desc ? Math.min(maxT, cursor ? cursor.t : Number.MAX_SAFE_INTEGER) : maxT;
    const streams = [anchorStream(db, tenantId, f, "created", desc, lo, hi, states ?? null), anchorStream(db, tenantId, f, "mark", desc, lo, hi, states ?? null)];
    let used = 0;
    for (;;) {
      const heads = await Promise.all(streams.map((s) => s.peek()));
      let pick = -1;
      for (let k = 0; k < heads.length; k++) {
        const h = heads[k];
        if (!h) continue;
        if (pick < 0 || (desc ? h.anchor > heads[pick]!.anchor : h.anchor < heads[pick]!.anchor)) pick = k;
      }
      if (pick < 0) break; // every anchor in range was read
      const frontier = heads[pick]!.anchor;
      // Entries beyond the frontier's reach are final: no anchor still unread can produce one of them.
      if (used % ANCHOR_CHUNK === 0 && used > 0) {
        const confirmed = found.filter((e) => (desc ? e.t > frontier + LOG_WINDOW_MS : e.t < frontier)).length;
        if (confirmed > pageSize || used >= ANCHOR_BUDGET) {
          boundary = desc ? { t: frontier + LOG_WINDOW_MS, id: "msg_~", i: 999_999 } : { t: frontier, id: "msg_", i: 0 };
          break;
        }
      }
      take(streams[pick].next());
      used++;
    }
  }

  // `boundary`: entries on its near side are final; the rest wait for the next call.
  const final = boundary ? found.filter((e) => (desc ? compareKeys(e, boundary!) > 0 : compareKeys(e, boundary!) < 0)) : found;
  final.sort(order);
  const page: Light[] = [];
  let bytes = 0;
  for (const e of final.slice(0, pageSize)) {
    const cost = (e.br ? PAGE_BODY_MAX : e.bz) + (e.r ? PAGE_BODY_MAX : e.z);
    if (page.length > 0 && bytes + cost > PAGE_BODY_BUDGET) break;
    bytes += cost;
    page.push(e);
  }
  // Cut short: go on after the page's last entry. Else, when the walk stopped early, from the boundary (it sorts
  // outside every real entry: "msg_" and "msg_~" bracket all ids).
  let next: string | null = null;
  if (page.length < final.length) next = formatCursor(page[page.length - 1]);
  else if (boundary) next = formatCursor(boundary);
  if (page.length === 0) return { events: [], cursor: next };
  return { events: await loadEntries(db, page), cursor: next };
}

/**
 * The rows of a page's entries: each message once, with only the entries the page shows (a long log is not read
 * whole), in page order. Entries whose message was pruned meanwhile are left out.
 */
async function loadEntries(db: D1Database, page: Light[]): Promise<{ event: LogEvent; message: StoredMessage }[]> {
  const want = new Map<string, number[]>();
  for (const e of page) (want.get(e.id) ?? want.set(e.id, []).get(e.id)!).push(e.i);
  const { results } = await db
    .prepare(
      `SELECT ${messageColumns("m")},
         (SELECT json_group_array(json_set(l.value, '$.i', l.key)) FROM json_each(m.log) l
          WHERE l.key IN (SELECT value FROM json_each(p.value ->> '$[1]'))) AS entries
       FROM json_each(?1) p JOIN messages m ON m.id = p.value ->> '$[0]'`,
    )
    .bind(JSON.stringify([...want]))
    .all<Record<string, unknown>>();
  const byKey = new Map<string, { event: LogEvent; message: StoredMessage }>();
  for (const r of results) {
    const message = rowToMessage(r);
    for (const x of JSON.parse(String(r.entries)) as StoredEntry[]) {
      byKey.set(`${message.id}#${x.i}`, { event: toEvent(message.tenantId, message.id, x), message });
    }
  }
  return page.flatMap((e) => byKey.get(`${e.id}#${e.i}`) ?? []);
}

/** A source of anchors in time order, read in chunks: creation anchors (`messages_tenant`) or log marks. */
function anchorStream(db: D1Database, tenantId: string, f: Filters, kind: "created" | "mark", desc: boolean, lo: number, hi: number, states: string[] | null) {
  const buffer: AnchorRow[] = [];
  let after: { anchor: number; id: string } | null = null;
  let done = false;
  let chunk = ANCHOR_CHUNK;
  const [timeCol, idCol, from] =
    kind === "created"
      ? ["m.created_at", "m.id", "messages m"]
      : ["k.time", "k.message_id", "log_marks k JOIN messages m ON m.id = k.message_id"];
  const tenantCol = kind === "created" ? "m.tenant_id" : "k.tenant_id";
  const fill = async () => {
    const w = new WhereBuilder();
    w.add((p) => `${tenantCol} = ${p(tenantId)}`);
    w.add((p) => `${timeCol} >= ${p(lo)}`);
    w.add((p) => `${timeCol} <= ${p(hi)}`);
    if (after) {
      const a = after;
      w.add((p) => `(${timeCol}, ${idCol}) ${desc ? "<" : ">"} (${p(a.anchor)}, ${p(a.id)})`);
    }
    messageConditions(w, f);
    // The state filter also trims the entries each row sends back (the listing checks it again).
    let statesAt: string | null = null;
    if (states) {
      w.params.push(JSON.stringify(states));
      statesAt = `?${w.params.length}`;
    }
    const dir = desc ? "DESC" : "ASC";
    const limit = chunk;
    chunk = Math.min(ANCHOR_CHUNK_MAX, chunk * 2);
    const { results } = await db
      .prepare(
        `SELECT m.id AS id, ${timeCol} AS anchor, coalesce(length(m.body), 0) AS bz, m.body_ref IS NOT NULL AS br,
           ${lightEntries(timeCol, statesAt)} AS light
         FROM ${from} WHERE ${w.toSql()} ORDER BY ${timeCol} ${dir}, ${idCol} ${dir} LIMIT ${limit}`,
      )
      .bind(...w.params)
      .all<AnchorRow>();
    for (const r of results) buffer.push({ ...r, anchor: Number(r.anchor), bz: Number(r.bz), br: Number(r.br) });
    if (results.length < limit) done = true;
    const last = results[results.length - 1];
    if (last) after = { anchor: Number(last.anchor), id: String(last.id) };
  };
  return {
    async peek(): Promise<AnchorRow | null> {
      if (buffer.length === 0 && !done) await fill();
      return buffer[0] ?? null;
    },
    next(): AnchorRow {
      return buffer.shift()!;
    },
  };
}
