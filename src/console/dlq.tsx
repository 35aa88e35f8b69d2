/** @jsxImportSource hono/jsx */
/** The dead-letter queue: the API's filters, one entry's page, retry (with overrides) and delete, one or in bulk. */
import type { Hono } from "hono";
import { type ConsoleEnv, callApi, readApi } from "./api";
import { done, formOf, str, takeFlash } from "./forms";
import { Body, Csrf, Field, FilterForm, Headers, Page, Time, TimeRange } from "./layout";
import { filterQuery } from "./logs";

interface DlqMessage {
  dlqId: string;
  messageId: string;
  url: string;
  method: string;
  createdAt: number;
  maxRetries: number;
  responseStatus: number;
  responseHeader?: Record<string, string[]>;
  responseBody?: string;
  responseBodyBase64?: string;
  header?: Record<string, string[]>;
  body?: string;
  bodyBase64?: string;
  label?: string;
  queueName?: string;
  topicName?: string;
  scheduleId?: string;
  error?: string;
}

const FILTERS: [string, string][] = [
  ["messageId", "Message id"],
  ["url", "URL"],
  ["label", "Label"],
  ["responseStatus", "Response status"],
  ["scheduleId", "Schedule"],
  ["queueName", "Queue"],
  ["topicName", "URL group"],
  ["flowControlKey", "Flow-control key"],
];

/** "Name: value" lines of a textarea, as override headers of a retry (only `Upstash-*` configuration headers). */
function overrideHeaders(f: FormData): { headers: Record<string, string>; problem: string | null } {
  const headers: Record<string, string> = {};
  const retries = str(f, "retries");
  const delay = str(f, "delay");
  if (retries) headers["Upstash-Retries"] = retries;
  if (delay) headers["Upstash-Delay"] = delay;
  for (const line of str(f, "headers").split(/\r?\n/)) {
    if (!line.trim()) continue;
    const i = line.indexOf(":");
    const name = i > 0 ? line.slice(0, i).trim() : "";
    if (!/^upstash-[a-z0-9-]+$/i.test(name)) {
      return { headers, problem: `"${line.trim()}" is not an override header: write Upstash-Name: value, one per line (e.g. Upstash-Timeout: 30s)` };
    }
    headers[name] = line.slice(i + 1).trim();
  }
  return { headers, problem: null };
}

export function dlqPages(app: Hono<ConsoleEnv>): void {
  app.get("/dlq", async (c) => {
    const s = c.get("session");
    const q = filterQuery(c, FILTERS.map(([k]) => k), 100);
    const r = await callApi<{ cursor?: string; messages: DlqMessage[] }>(c, "GET", "/v2/dlq", { query: q });
    const list = r.ok ? r.data.messages : [];
    const next = new URLSearchParams(new URL(c.req.url).search);
    if (r.ok && r.data.cursor) next.set("cursor", r.data.cursor);
    const flash = takeFlash(c) ?? (r.ok ? null : { kind: "error" as const, text: r.error ?? "the DLQ could not be read" });
    const ro = s.tenant.readOnly;
    return c.html(
      <Page title="Dead-letter queue" section="/console/dlq" session={s} flash={flash}>
        <FilterForm action="/console/dlq">
          {FILTERS.map(([k, label]) => (
            <Field name={k} label={label} value={c.req.query(k)} />
          ))}
          <TimeRange from={c.req.query("from")} to={c.req.query("to")} />
        </FilterForm>
        {list.length === 0 ? (
          <p class="muted">The DLQ has no entries that match.</p>
        ) : (
          <form method="post" action="/console/dlq/bulk" id="dlq-bulk">
            <Csrf session={s} />
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    {ro ? null : (
                      <th>
                        <input type="checkbox" data-select-all="dlqIds" aria-label="Select all entries" />
                      </th>
                    )}
                    <th>Failed at (UTC)</th>
                    <th>Message</th>
                    <th>Status</th>
                    <th class="hide-sm">URL</th>
                    <th>Entry</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((m) => (
                    <tr data-dlq-id={m.dlqId}>
                      {ro ? null : (
                        <td>
                          <input type="checkbox" name="dlqIds" value={m.dlqId} aria-label={`Select ${m.dlqId}`} />
                        </td>
                      )}
                      <td class="small">
                        <Time ms={m.createdAt} />
                      </td>
                      <td>
                        <a class="mono small" href={`/console/messages/${encodeURIComponent(m.messageId)}`}>
                          {m.messageId}
                        </a>
                      </td>
                      <td>{m.responseStatus}</td>
                      <td class="hide-sm small mono">{m.url}</td>
                      <td>
                        <a href={`/console/dlq/${encodeURIComponent(m.dlqId)}`}>Open</a>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {ro ? null : (
              <div class="actions" style="margin-top:.75rem">
                <button type="submit" name="op" value="retry" class="primary">
                  Retry selected
                </button>
                <button type="submit" name="op" value="delete" class="danger" data-confirm="Delete the selected entries?">
                  Delete selected
                </button>
              </div>
            )}
          </form>
        )}
        {r.ok && r.data.cursor ? (
          <div class="pager">
            <a class="button" href={`/console/dlq?${next}`} rel="next">
              Next page
            </a>
          </div>
        ) : null}
      </Page>,
    );
  });

  app.get("/dlq/:dlqId", async (c) => {
    const s = c.get("session");
    const m = await readApi<DlqMessage>(c, `/v2/dlq/${encodeURIComponent(c.req.param("dlqId"))}`);
    return c.html(
      <Page title={`DLQ entry ${m.dlqId}`} section="/console/dlq" session={s} flash={takeFlash(c)}>
        <div class="card">
          <dl class="kv">
            <dt>Message</dt>
            <dd>
              <a class="mono" href={`/console/messages/${encodeURIComponent(m.messageId)}`}>
                {m.messageId}
              </a>
            </dd>
            <dt>Destination</dt>
            <dd class="mono">
              {m.method} {m.url}
            </dd>
            <dt>Failed at</dt>
            <dd>
              <Time ms={m.createdAt} />
            </dd>
            <dt>Last response</dt>
            <dd>HTTP {m.responseStatus}</dd>
            {m.error ? (
              <>
                <dt>Error</dt>
                <dd>{m.error}</dd>
              </>
            ) : null}
          </dl>
        </div>
        <div class="card">
          <h2>Last response</h2>
          <Headers headers={m.responseHeader} />
          <Body text={m.responseBody ?? null} base64={m.responseBodyBase64 ?? null} />
          <h2>Request</h2>
          <Headers headers={m.header} />
          <Body text={m.body ?? null} base64={m.bodyBase64 ?? null} />
        </div>
        {s.tenant.readOnly ? null : (
          <div class="card">
            <h2>Retry</h2>
            <p class="muted small">
              Publishes the message again under a new id with its original body and headers, then removes this entry. Leave a field empty to keep the
              stored value.
            </p>
            <form method="post" action={`/console/dlq/${encodeURIComponent(m.dlqId)}/retry`}>
              <Csrf session={s} />
              <div class="fields">
                <Field name="retries" label="Retries" type="number" placeholder={String(m.maxRetries)} />
                <Field name="delay" label="Delay" placeholder="e.g. 30s, 5m" />
                <div class="wide">
                  <label for="f-headers">Override headers</label>
                  <textarea id="f-headers" name="headers" placeholder={"Upstash-Timeout: 30s\nUpstash-Method: PUT"} aria-describedby="f-headers-hint"></textarea>
                  <div class="muted small" id="f-headers-hint">
                    One Upstash-* configuration header per line, as the API's retry call accepts them.
                  </div>
                </div>
              </div>
              <div class="actions" style="margin-top:.75rem">
                <button type="submit" class="primary">
                  Retry now
                </button>
              </div>
            </form>
            <form method="post" action="/console/dlq/bulk" style="margin-top:1rem" data-confirm="Delete this entry?">
              <Csrf session={s} />
              <input type="hidden" name="dlqIds" value={m.dlqId} />
              <button type="submit" name="op" value="delete" class="danger">
                Delete entry
              </button>
            </form>
          </div>
        )}
      </Page>,
    );
  });

  app.post("/dlq/:dlqId/retry", async (c) => {
    const id = c.req.param("dlqId");
    const f = await formOf(c);
    const { headers, problem } = overrideHeaders(f);
    if (problem) return done(c, `/console/dlq/${encodeURIComponent(id)}`, "error", problem);
    const r = await callApi<{ messageId: string }>(c, "POST", `/v2/dlq/retry/${encodeURIComponent(id)}`, { headers });
    if (!r.ok) return done(c, `/console/dlq/${encodeURIComponent(id)}`, "error", `Retry failed: ${r.error}`);
    return done(c, `/console/messages/${encodeURIComponent(r.data.messageId)}`, "ok", `Retried as message ${r.data.messageId}.`);
  });

  app.post("/dlq/bulk", async (c) => {
    const f = await formOf(c);
    const ids = f.getAll("dlqIds").filter((v): v is string => typeof v === "string" && v !== "");
    if (!ids.length) return done(c, "/console/dlq", "error", "Select at least one entry.");
    const body = JSON.stringify({ dlqIds: ids });
    const op = str(f, "op");
    if (op === "retry") {
      const r = await callApi<{ responses: { messageId: string }[] }>(c, "POST", "/v2/dlq/retry", { body, headers: { "content-type": "application/json" } });
      return done(c, "/console/dlq", r.ok ? "ok" : "error", r.ok ? `Retried ${r.data.responses.length} entr${r.data.responses.length === 1 ? "y" : "ies"}.` : `Retry failed: ${r.error}`);
    }
    if (op === "delete") {
      const r = await callApi<{ deleted: number }>(c, "DELETE", "/v2/dlq", { body, headers: { "content-type": "application/json" } });
      return done(c, "/console/dlq", r.ok ? "ok" : "error", r.ok ? `Deleted ${r.data.deleted} entr${r.data.deleted === 1 ? "y" : "ies"}.` : `Delete failed: ${r.error}`);
    }
    return done(c, "/console/dlq", "error", `Unknown action "${op}".`);
  });
}
