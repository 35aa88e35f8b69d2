/** @jsxImportSource hono/jsx */
/** The publish form: every common option, sent as POST /v2/publish/<destination>, shown as curl and SDK code. */
import type { Hono } from "hono";
import { type ConsoleEnv, callApi } from "./api";
import { done, formOf, str, takeFlash } from "./forms";
import { Csrf, Field, Page } from "./layout";

const OPTION_HEADERS: [string, string][] = [
  ["method", "Upstash-Method"],
  ["delay", "Upstash-Delay"],
  ["notBefore", "Upstash-Not-Before"],
  ["retries", "Upstash-Retries"],
  ["callback", "Upstash-Callback"],
  ["failureCallback", "Upstash-Failure-Callback"],
  ["deduplicationId", "Upstash-Deduplication-Id"],
  ["label", "Upstash-Label"],
  ["flowControlKey", "Upstash-Flow-Control-Key"],
  ["flowControlValue", "Upstash-Flow-Control-Value"],
];

export function publishPages(app: Hono<ConsoleEnv>): void {
  app.get("/publish", (c) => {
    const s = c.get("session");
    return c.html(
      <Page title="Publish a message" section="/console/publish" session={s} flash={takeFlash(c)}>
        {s.tenant.readOnly ? (
          <p class="muted">This session is read-only: it cannot publish.</p>
        ) : (
          <form method="post" action="/console/publish" id="publish-form" class="card">
            <Csrf session={s} />
            <div class="fields">
              <Field name="destination" label="URL or URL group" required wide placeholder="https://example.com/api/hook or my-group" />
              <div>
                <label for="f-method">Method</label>
                <select id="f-method" name="method">
                  {["POST", "GET", "PUT", "PATCH", "DELETE"].map((m) => (
                    <option>{m}</option>
                  ))}
                </select>
              </div>
              <Field name="delay" label="Delay" placeholder="e.g. 30s, 2h" />
              <Field name="notBefore" label="Not before (Unix seconds)" type="number" />
              <Field name="retries" label="Retries" type="number" />
              <Field name="callback" label="Callback URL" />
              <Field name="failureCallback" label="Failure callback URL" />
              <Field name="deduplicationId" label="Deduplication id" />
              <Field name="label" label="Label" />
              <Field name="flowControlKey" label="Flow-control key" />
              <Field name="flowControlValue" label="Flow-control value" placeholder="parallelism=2, rate=10" />
              <div class="wide">
                <label for="f-headers">Headers forwarded to the destination</label>
                <textarea id="f-headers" name="headers" placeholder="Content-Type: application/json"></textarea>
              </div>
              <div class="wide">
                <label for="f-body">Body</label>
                <textarea id="f-body" name="body"></textarea>
              </div>
            </div>
            <div class="actions" style="margin-top:.75rem">
              <button type="submit" class="primary">
                Publish
              </button>
            </div>
            <h2>The same request with curl</h2>
            <pre id="curl" aria-live="off"></pre>
            <h2>With the SDK</h2>
            <pre id="sdk" aria-live="off"></pre>
          </form>
        )}
      </Page>,
    );
  });

  app.post("/publish", async (c) => {
    const f = await formOf(c);
    const headers: Record<string, string> = {};
    for (const [field, header] of OPTION_HEADERS) if (str(f, field)) headers[header] = str(f, field);
    for (const line of str(f, "headers").split(/\r?\n/)) {
      if (!line.trim()) continue;
      const i = line.indexOf(":");
      if (i <= 0) return done(c, "/console/publish", "error", `"${line.trim()}" is not a header line: write Name: value`);
      const name = line.slice(0, i).trim();
      headers[name.toLowerCase() === "content-type" ? "Content-Type" : `Upstash-Forward-${name}`] = line.slice(i + 1).trim();
    }
    const destination = str(f, "destination");
    if (!destination) return done(c, "/console/publish", "error", "A destination is required.");
    const body = typeof f.get("body") === "string" ? (f.get("body") as string) : "";
    const r = await callApi<{ messageId?: string } | { messageId: string }[]>(c, "POST", `/v2/publish/${destination}`, { headers, body });
    if (!r.ok) return done(c, "/console/publish", "error", `Not published: ${r.error}`);
    const ids = (Array.isArray(r.data) ? r.data : [r.data]).map((x) => x.messageId).filter((x): x is string => !!x);
    if (ids.length === 1) return done(c, `/console/messages/${encodeURIComponent(ids[0])}`, "ok", `Published as ${ids[0]}.`);
    return done(c, `/console/logs?topicName=${encodeURIComponent(destination)}`, "ok", `Published ${ids.length} messages to ${destination}.`);
  });
}
