/** @jsxImportSource hono/jsx */
/** Logs grouped by message, with filters, cursor paging and a live tail; the message page with its timeline. */
import type { Context, Hono } from "hono";
import { relatedMessages } from "../db/stats";
import { shardEnv } from "../db/shards";
import { type ConsoleEnv, callApi, readApi } from "./api";
import { done, takeFlash } from "./forms";
import { Action, Badge, Body, Field, FilterForm, Headers, Page, StateSelect, Time, TimeRange } from "./layout";

export interface LogEntry {
  time: number;
  messageId: string;
  state: string;
  error?: string;
  nextDeliveryTime?: number;
  url: string;
  topicName?: string;
  endpointName?: string;
  scheduleId?: string;
  queueName?: string;
  method: string;
  header?: Record<string, string[]>;
  body?: string;
  bodySize?: number;
  responseStatus?: number;
  responseHeaders?: Record<string, string[]>;
  responseBody?: string;
  responseBodySize?: number;
  maxRetries?: number;
  callback?: string;
  failureCallback?: string;
  label?: string;
  labels?: string[];
  flowControlKey?: string;
  timeout?: number;
}

export const LOG_STATES = ["CREATED", "ACTIVE", "RETRY", "ERROR", "DELIVERED", "FAILED", "CANCEL_REQUESTED", "CANCELED", "IN_PROGRESS"];
/** The filters the logs page passes through to GET /v2/logs, and their labels. */
const FILTERS: [string, string][] = [
  ["messageId", "Message id"],
  ["url", "URL"],
  ["label", "Label"],
  ["scheduleId", "Schedule"],
  ["queueName", "Queue"],
  ["topicName", "URL group"],
];

/** A `datetime-local` value (UTC) as Unix ms, or undefined. */
function utcField(v: string | undefined): string | undefined {
  if (!v) return undefined;
  const ms = Date.parse(/Z$|[+-]\d\d:\d\d$/.test(v) ? v : `${v}Z`);
  return Number.isFinite(ms) ? String(ms) : undefined;
}


/**
 * The API query of a filtered list page: the named filters as typed, the time range (UTC fields) in Unix ms, the
 * cursor, and the page size.
 */
export function filterQuery(c: Context<ConsoleEnv>, names: readonly string[], count: number): URLSearchParams {
  const q = new URLSearchParams();
  for (const k of names) {
    const v = c.req.query(k)?.trim();
    if (v) q.set(k, v);
  }
  const from = utcField(c.req.query("from"));
  const to = utcField(c.req.query("to"));
  if (from) q.set("fromDate", from);
  if (to) q.set("toDate", to);
  const cursor = c.req.query("cursor");
  if (cursor) q.set("cursor", cursor);
  q.set("count", String(count));
  return q;
}

/** The page's entries grouped by message, in the order the messages first appear (newest first). */
function groups(entries: LogEntry[]): { id: string; entries: LogEntry[] }[] {
  const byId = new Map<string, LogEntry[]>();
  for (const e of entries) {
    const list = byId.get(e.messageId);
    if (list) list.push(e);
    else byId.set(e.messageId, [e]);
  }
  return [...byId].map(([id, list]) => ({ id, entries: list }));
}

export function logPages(app: Hono<ConsoleEnv>): void {
  app.get("/logs", async (c) => {
    const s = c.get("session");
    const q = filterQuery(c, ["state", ...FILTERS.map(([k]) => k)], 100);
    const r = await callApi<{ cursor?: string; logs: LogEntry[] }>(c, "GET", "/v2/logs", { query: q });
    const flash = takeFlash(c) ?? (r.ok ? null : { kind: "error" as const, text: r.error ?? "the logs could not be read" });
    const entries = r.ok ? r.data.logs : [];
    const nextCursor = r.ok ? r.data.cursor : undefined;
    const here = new URL(c.req.url);
    const nextUrl = new URLSearchParams(here.search);
    if (nextCursor) nextUrl.set("cursor", nextCursor);
    const filterOnly = new URLSearchParams(here.search);
    filterOnly.delete("cursor");
    return c.html(
      <Page title="Logs" section="/console/logs" session={s} flash={flash}>
        <FilterForm action="/console/logs">
          <StateSelect states={LOG_STATES} value={c.req.query("state")} />
          {FILTERS.map(([k, label]) => (
            <Field name={k} label={label} value={c.req.query(k)} />
          ))}
          <TimeRange from={c.req.query("from")} to={c.req.query("to")} />
        </FilterForm>
        <div class="card">
          <div class="actions">
            <input type="checkbox" id="tail-toggle" />
            <label for="tail-toggle" style="display:inline;margin:0">
              Live tail (new entries matching these filters, without reloading)
            </label>
            <span id="tail-status" class="muted small" role="status" aria-live="polite"></span>
          </div>
          <div id="tail" hidden>
            <div class="table-wrap" style="margin-top:.5rem">
              <table>
                <thead>
                  <tr>
                    <th>Time (UTC)</th>
                    <th>State</th>
                    <th>Message</th>
                    <th>URL</th>
                    <th>Status</th>
                  </tr>
                </thead>
                <tbody id="tail-list"></tbody>
              </table>
            </div>
          </div>
        </div>
        {entries.length === 0 ? (
          <p class="muted">No log entries match.</p>
        ) : (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Message</th>
                  <th>Entries (newest first)</th>
                  <th class="hide-sm">URL</th>
                </tr>
              </thead>
              <tbody>
                {groups(entries).map((g) => (
                  <tr class="group" data-message-id={g.id}>
                    <td>
                      <a class="mono" href={`/console/messages/${encodeURIComponent(g.id)}`}>
                        {g.id}
                      </a>
                      {g.entries[0].label ? <div class="small muted">label {g.entries[0].label}</div> : null}
                    </td>
                    <td>
                      {g.entries.map((e) => (
                        <div class="small">
                          <Badge state={e.state} /> <Time ms={e.time} />
                          {e.responseStatus !== undefined ? <span class="muted"> · HTTP {e.responseStatus}</span> : null}
                          {e.error ? <span class="muted"> · {e.error.slice(0, 120)}</span> : null}
                        </div>
                      ))}
                    </td>
                    <td class="hide-sm small mono">{g.entries[0].url}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <div class="pager">
          {c.req.query("cursor") ? (
            <a class="button" href={`/console/logs?${filterOnly}`}>
              First page
            </a>
          ) : null}
          {nextCursor ? (
            <a class="button" href={`/console/logs?${nextUrl}`} rel="next">
              Next page
            </a>
          ) : null}
        </div>
      </Page>,
    );
  });

  app.get("/messages/:id", async (c) => {
    const s = c.get("session");
    const id = c.req.param("id");
    const db = shardEnv(c.env, s.tenant.shard).DB;
    const [log, pending, dlq, related] = await Promise.all([
      readApi<{ logs: LogEntry[] }>(c, "/v2/logs", { messageId: id, count: "1000" }),
      callApi<Record<string, unknown>>(c, "GET", `/v2/messages/${encodeURIComponent(id)}`),
      readApi<{ messages: { dlqId: string }[] }>(c, "/v2/dlq", { messageId: id }),
      relatedMessages(db, s.tenant.id, id),
    ]);
    // The API lists newest first (by time, then by position in the message's log): the timeline reads oldest first.
    const entries = [...log.logs].reverse();
    if (!entries.length && !pending.ok) {
      return c.html(
        <Page title="Message not found" section="/console/logs" session={s} flash={{ kind: "error", text: `No message ${id} in this tenant's logs (it may be past LOG_RETENTION).` }}>
          <a href="/console/logs">Back to the logs</a>
        </Page>,
        404,
      );
    }
    const m = entries[entries.length - 1] ?? ({} as LogEntry);
    const current = entries.length ? entries[entries.length - 1].state : "CREATED";
    const dlqEntry = dlq.messages[0];
    return c.html(
      <Page title={`Message ${id}`} section="/console/logs" session={s} flash={takeFlash(c)}>
        <div class="card">
          <div class="actions">
            <Badge state={current} />
            {pending.ok ? (
              <Action session={s} action={`/console/messages/${encodeURIComponent(id)}/cancel`} label="Cancel message" danger confirm="Cancel this message?" />
            ) : null}
            {dlqEntry ? (
              <a class="button" href={`/console/dlq/${encodeURIComponent(dlqEntry.dlqId)}`}>
                In the DLQ: retry or delete
              </a>
            ) : null}
          </div>
          <dl class="kv" style="margin-top:.75rem">
            <dt>Destination</dt>
            <dd class="mono">{m.url}</dd>
            <dt>Method</dt>
            <dd>{m.method}</dd>
            {m.topicName ? (
              <>
                <dt>URL group</dt>
                <dd>
                  {m.topicName}
                  {m.endpointName ? ` (${m.endpointName})` : ""}
                </dd>
              </>
            ) : null}
            {m.queueName ? (
              <>
                <dt>Queue</dt>
                <dd>
                  <a href={`/console/queues/${encodeURIComponent(m.queueName)}`}>{m.queueName}</a>
                </dd>
              </>
            ) : null}
            {m.scheduleId ? (
              <>
                <dt>Schedule</dt>
                <dd>
                  <a href={`/console/schedules/${encodeURIComponent(m.scheduleId)}/edit`}>{m.scheduleId}</a>
                </dd>
              </>
            ) : null}
            <dt>Retries</dt>
            <dd>{m.maxRetries ?? "–"}</dd>
            {m.labels?.length ? (
              <>
                <dt>Labels</dt>
                <dd>{m.labels.join(", ")}</dd>
              </>
            ) : null}
            {m.flowControlKey ? (
              <>
                <dt>Flow control</dt>
                <dd>{m.flowControlKey}</dd>
              </>
            ) : null}
            {m.callback ? (
              <>
                <dt>Callback</dt>
                <dd class="mono">{m.callback}</dd>
              </>
            ) : null}
            {m.failureCallback ? (
              <>
                <dt>Failure callback</dt>
                <dd class="mono">{m.failureCallback}</dd>
              </>
            ) : null}
            {related.parent ? (
              <>
                <dt>{related.parent ? "Callback of" : ""}</dt>
                <dd>
                  <a class="mono" href={`/console/messages/${encodeURIComponent(related.parent.id)}`} data-rel="source">
                    {related.parent.id}
                  </a>{" "}
                  (sourceMessageId)
                </dd>
              </>
            ) : null}
          </dl>
        </div>
        {related.children.length ? (
          <div class="card">
            <h2>Callback messages it produced</h2>
            <ul>
              {related.children.map((k) => (
                <li>
                  <a class="mono" href={`/console/messages/${encodeURIComponent(k.id)}`} data-rel="callback">
                    {k.id}
                  </a>{" "}
                  {k.kind === "failure_callback" ? "failure callback" : "callback"} <Badge state={k.state} /> <span class="small mono">{k.url}</span>
                </li>
              ))}
            </ul>
          </div>
        ) : null}
        <div class="card">
          <h2>Request</h2>
          <h3 class="small muted">Headers</h3>
          <Headers headers={m.header ?? (pending.ok ? (pending.data.header as Record<string, string[]>) : null)} />
          <h3 class="small muted">Body</h3>
          <Body base64={m.body ?? null} truncatedSize={m.bodySize ?? null} text={!m.body && pending.ok ? ((pending.data.body as string | undefined) ?? null) : null} />
        </div>
        <div class="card">
          <h2>Timeline</h2>
          <ol class="timeline" aria-label="Attempts and state changes, oldest first">
            {entries.map((e) => (
              <li data-state={e.state}>
                <Badge state={e.state} /> <Time ms={e.time} />
                {e.responseStatus !== undefined ? <strong> · HTTP {e.responseStatus}</strong> : null}
                {e.error ? <div class="small">Error: {e.error}</div> : null}
                {e.nextDeliveryTime ? (
                  <div class="small">
                    Next retry: <Time ms={e.nextDeliveryTime} />
                  </div>
                ) : null}
                {e.responseHeaders || e.responseBody ? (
                  <details>
                    <summary>Response</summary>
                    <Headers headers={e.responseHeaders} />
                    <Body base64={e.responseBody ?? null} truncatedSize={e.responseBodySize ?? null} />
                  </details>
                ) : null}
              </li>
            ))}
          </ol>
        </div>
      </Page>,
    );
  });

  app.post("/messages/:id/cancel", async (c) => {
    const id = c.req.param("id");
    const r = await callApi(c, "DELETE", `/v2/messages/${encodeURIComponent(id)}`);
    return done(c, `/console/messages/${encodeURIComponent(id)}`, r.ok ? "ok" : "error", r.ok ? "Message cancelled." : `Cancel failed: ${r.error}`);
  });
}
