/** @jsxImportSource hono/jsx */
/** Schedules: the list with cron in words and next fires, create / edit with every option, pause, resume, delete. */
import type { Hono } from "hono";
import { describeCron, nextFires, parseCron } from "../core/cron";
import { type ConsoleEnv, callApi, readApi } from "./api";
import { done, formOf, str, takeFlash } from "./forms";
import { Action, Badge, Csrf, Field, Page, Time } from "./layout";
import type { Session } from "./session";

interface ScheduleView {
  scheduleId: string;
  cron: string;
  destination: string;
  method: string;
  header?: Record<string, string[]>;
  body?: string;
  bodyBase64?: string;
  retries?: number;
  delay?: number;
  retryDelayExpression?: string;
  timeout?: number;
  callback?: string;
  failureCallback?: string;
  isPaused?: boolean;
  queueName?: string;
  label?: string;
  flowControlKey?: string;
  parallelism?: number;
  rate?: number;
  period?: number;
  createdAt: number;
  lastScheduleTime?: number;
  nextScheduleTime?: number;
}

/** The cron in words and its next fires, or the parser's complaint. */
function cronInfo(expr: string, paused: boolean | undefined): { words: string; next: number[] } {
  try {
    const parsed = parseCron(expr);
    return { words: describeCron(parsed), next: paused ? [] : nextFires(parsed, Date.now(), 3) };
  } catch (err) {
    return { words: err instanceof Error ? err.message : String(err), next: [] };
  }
}

function zones(): string[] {
  try {
    const list = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.("timeZone");
    if (list?.length) return list;
  } catch {
    // fall through to a short list
  }
  return ["America/New_York", "America/Los_Angeles", "Europe/London", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney"];
}

/** `CRON_TZ=Zone fields` split into its zone and its fields. */
function splitCron(cron: string): { zone: string; fields: string } {
  const m = /^CRON_TZ=(\S+)\s+(.*)$/.exec(cron.trim());
  return m ? { zone: m[1], fields: m[2] } : { zone: "", fields: cron.trim() };
}

function forwardLines(headers: Record<string, string[]> | undefined): string {
  return Object.entries(headers ?? {})
    .flatMap(([k, vs]) => vs.map((v) => `${k}: ${v}`))
    .join("\n");
}

function ScheduleForm(p: { s: ScheduleView | null; session: Session; editing: boolean; typed?: Record<string, string> }) {
  const s = p.s;
  const t = p.typed;
  const { zone, fields } = splitCron(s?.cron ?? "");
  const flowValue = t
    ? t.flowControlValue
    : s?.flowControlKey
    ? [s.parallelism ? `parallelism=${s.parallelism}` : "", s.rate ? `rate=${s.rate}` : "", s.period ? `period=${s.period}s` : ""].filter(Boolean).join(", ")
    : "";
  return (
    <form method="post" action="/console/schedules" class="card" id="schedule-form">
      <Csrf session={p.session} />
      {p.editing && s ? <input type="hidden" name="scheduleId" value={s.scheduleId} /> : null}
      {p.editing ? <input type="hidden" name="mode" value="edit" /> : null}
      <div class="fields">
        {p.editing ? null : <Field name="scheduleId" label="Schedule id (optional)" value={s?.scheduleId} hint="Letters, digits, - . _; a new id is made when empty." />}
        <Field name="destination" label="Destination URL or URL group" value={s?.destination} required wide placeholder="https://example.com/api/job" />
        <div>
          <label for="cron">Cron expression</label>
          <input id="cron" name="cron" type="text" value={fields} required placeholder="*/5 * * * *" aria-describedby="cron-preview" autocomplete="off" />
        </div>
        <div>
          <label for="cron-tz">Time zone (CRON_TZ)</label>
          <select id="cron-tz" name="tz">
            <option value="">UTC</option>
            {zones().map((z) => (
              <option value={z} selected={z === zone}>
                {z}
              </option>
            ))}
          </select>
        </div>
        <div class="wide" id="cron-preview" aria-live="polite"></div>
        <div>
          <label for="f-method">Method</label>
          <select id="f-method" name="method">
            {["POST", "GET", "PUT", "PATCH", "DELETE"].map((m) => (
              <option selected={(s?.method ?? "POST") === m}>{m}</option>
            ))}
          </select>
        </div>
        <Field name="retries" label="Retries" type="number" value={s?.retries} />
        <Field name="retryDelay" label="Retry delay expression" value={s?.retryDelayExpression} placeholder="pow(2, retried) * 1000" />
        <Field name="delay" label="Delay of each message" value={t ? t.delay : s?.delay ? `${s.delay}s` : ""} placeholder="e.g. 30s" />
        <Field name="timeout" label="Timeout" value={t ? t.timeout : s?.timeout ? `${s.timeout}s` : ""} placeholder="e.g. 30s" />
        <Field name="callback" label="Callback URL" value={s?.callback} />
        <Field name="failureCallback" label="Failure callback URL" value={s?.failureCallback} />
        <Field name="queueName" label="Queue" value={s?.queueName} />
        <Field name="label" label="Label" value={s?.label} />
        <Field name="flowControlKey" label="Flow-control key" value={s?.flowControlKey} />
        <Field name="flowControlValue" label="Flow-control value" value={flowValue} placeholder="parallelism=2, rate=10, period=1s" />
        <div class="wide">
          <label for="f-headers">Headers forwarded to the destination</label>
          <textarea id="f-headers" name="headers" placeholder="Content-Type: application/json">
            {t ? t.headers : forwardLines(s?.header)}
          </textarea>
        </div>
        <div class="wide">
          <label for="f-body">Body</label>
          <textarea id="f-body" name="body">{s?.body ?? ""}</textarea>
        </div>
      </div>
      <div class="actions" style="margin-top:.75rem">
        <button type="submit" class="primary">
          {p.editing ? "Save schedule" : "Create schedule"}
        </button>
        <a class="button" href="/console/schedules">
          Cancel
        </a>
      </div>
    </form>
  );
}

/** The API call of the form: POST /v2/schedules/<destination> with Upstash-* headers (the SDK's shape). */
function scheduleRequest(f: FormData): { destination: string; headers: Record<string, string>; body: string; problem: string | null } {
  const headers: Record<string, string> = {};
  const cron = str(f, "cron");
  const tz = str(f, "tz");
  headers["Upstash-Cron"] = tz && !cron.startsWith("CRON_TZ=") ? `CRON_TZ=${tz} ${cron}` : cron;
  const map: [string, string][] = [
    ["scheduleId", "Upstash-Schedule-Id"],
    ["method", "Upstash-Method"],
    ["retries", "Upstash-Retries"],
    ["retryDelay", "Upstash-Retry-Delay"],
    ["delay", "Upstash-Delay"],
    ["timeout", "Upstash-Timeout"],
    ["callback", "Upstash-Callback"],
    ["failureCallback", "Upstash-Failure-Callback"],
    ["queueName", "Upstash-Queue-Name"],
    ["label", "Upstash-Label"],
    ["flowControlKey", "Upstash-Flow-Control-Key"],
    ["flowControlValue", "Upstash-Flow-Control-Value"],
  ];
  for (const [field, header] of map) {
    const v = str(f, field);
    if (v) headers[header] = v;
  }
  for (const line of str(f, "headers").split(/\r?\n/)) {
    if (!line.trim()) continue;
    const i = line.indexOf(":");
    if (i <= 0) return { destination: "", headers, body: "", problem: `"${line.trim()}" is not a header line: write Name: value` };
    const name = line.slice(0, i).trim();
    const value = line.slice(i + 1).trim();
    if (name.toLowerCase() === "content-type") headers["Content-Type"] = value;
    else headers[`Upstash-Forward-${name}`] = value;
  }
  const body = typeof f.get("body") === "string" ? (f.get("body") as string) : "";
  return { destination: str(f, "destination"), headers, body, problem: null };
}

export function schedulePages(app: Hono<ConsoleEnv>): void {
  app.get("/schedules", async (c) => {
    const s = c.get("session");
    const list = await readApi<ScheduleView[]>(c, "/v2/schedules");
    list.sort((a, b) => b.createdAt - a.createdAt);
    return c.html(
      <Page title="Schedules" section="/console/schedules" session={s} flash={takeFlash(c)}>
        {s.tenant.readOnly ? null : (
          <p>
            <a class="button primary" href="/console/schedules/new">
              New schedule
            </a>
          </p>
        )}
        {list.length === 0 ? (
          <p class="muted">No schedules.</p>
        ) : (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Schedule</th>
                  <th>When</th>
                  <th>Next fires (UTC)</th>
                  <th class="hide-sm">Destination</th>
                  <th>State</th>
                  <th>Actions</th>
                </tr>
              </thead>
              <tbody>
                {list.map((x) => {
                  const info = cronInfo(x.cron, x.isPaused);
                  return (
                    <tr data-schedule-id={x.scheduleId}>
                      <td class="mono small">
                        <a href={`/console/schedules/${encodeURIComponent(x.scheduleId)}/edit`}>{x.scheduleId}</a>
                      </td>
                      <td>
                        <div>{info.words}</div>
                        <code>{x.cron}</code>
                      </td>
                      <td class="small">
                        {info.next.length
                          ? info.next.map((t) => (
                              <div>
                                <Time ms={t} />
                              </div>
                            ))
                          : "–"}
                      </td>
                      <td class="hide-sm small mono">{x.destination}</td>
                      <td>
                        <Badge state={x.isPaused ? "paused" : "active"} />
                      </td>
                      <td>
                        <div class="actions">
                          {x.isPaused ? (
                            <Action session={s} action={`/console/schedules/${encodeURIComponent(x.scheduleId)}/resume`} label="Resume" />
                          ) : (
                            <Action session={s} action={`/console/schedules/${encodeURIComponent(x.scheduleId)}/pause`} label="Pause" />
                          )}
                          <Action session={s} action={`/console/schedules/${encodeURIComponent(x.scheduleId)}/delete`} label="Delete" danger confirm={`Delete schedule ${x.scheduleId}?`} />
                          <a href={`/console/logs?scheduleId=${encodeURIComponent(x.scheduleId)}`}>Logs</a>
                        </div>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </Page>,
    );
  });

  app.get("/schedules/new", (c) => {
    const s = c.get("session");
    if (s.tenant.readOnly) return done(c, "/console/schedules", "error", "This session is read-only.");
    return c.html(
      <Page title="New schedule" section="/console/schedules" session={s} flash={takeFlash(c)}>
        <ScheduleForm s={null} session={s} editing={false} />
      </Page>,
    );
  });

  app.get("/schedules/:id/edit", async (c) => {
    const s = c.get("session");
    const x = await readApi<ScheduleView>(c, `/v2/schedules/${encodeURIComponent(c.req.param("id"))}`);
    const info = cronInfo(x.cron, x.isPaused);
    return c.html(
      <Page title={`Schedule ${x.scheduleId}`} section="/console/schedules" session={s} flash={takeFlash(c)}>
        <div class="card">
          <div class="actions">
            <Badge state={x.isPaused ? "paused" : "active"} /> {info.words}
          </div>
          <dl class="kv small" style="margin-top:.5rem">
            <dt>Last fire</dt>
            <dd>
              <Time ms={x.lastScheduleTime} />
            </dd>
            <dt>Next fire</dt>
            <dd>
              <Time ms={x.nextScheduleTime} />
            </dd>
          </dl>
        </div>
        {s.tenant.readOnly ? null : <ScheduleForm s={x} session={s} editing />}
      </Page>,
    );
  });

  app.post("/schedules", async (c) => {
    const f = await formOf(c);
    const req = scheduleRequest(f);
    const problem = req.problem ?? (req.destination ? null : "A destination is required.");
    const r = problem ? null : await callApi<{ scheduleId: string }>(c, "POST", `/v2/schedules/${req.destination}`, { headers: req.headers, body: req.body });
    if (r?.ok) return done(c, "/console/schedules", "ok", `Schedule ${r.data.scheduleId} saved.`);
    // Shown again with what was typed, and why it was refused.
    const editing = str(f, "mode") === "edit";
    const typed: ScheduleView = {
      scheduleId: str(f, "scheduleId"),
      cron: (str(f, "tz") ? `CRON_TZ=${str(f, "tz")} ` : "") + str(f, "cron"),
      destination: req.destination,
      method: str(f, "method") || "POST",
      retries: str(f, "retries") === "" ? undefined : Number(str(f, "retries")),
      retryDelayExpression: str(f, "retryDelay"),
      callback: str(f, "callback"),
      failureCallback: str(f, "failureCallback"),
      queueName: str(f, "queueName"),
      label: str(f, "label"),
      flowControlKey: str(f, "flowControlKey"),
      body: typeof f.get("body") === "string" ? (f.get("body") as string) : "",
      createdAt: 0,
    };
    return c.html(
      <Page title={editing ? `Schedule ${typed.scheduleId}` : "New schedule"} section="/console/schedules" session={c.get("session")} flash={{ kind: "error", text: `The schedule was not saved: ${problem ?? r?.error}` }}>
        <ScheduleForm s={typed} session={c.get("session")} editing={editing} typed={{ delay: str(f, "delay"), timeout: str(f, "timeout"), flowControlValue: str(f, "flowControlValue"), headers: str(f, "headers") }} />
      </Page>,
      r ? (r.status as 400) : 400,
    );
  });

  for (const op of ["pause", "resume", "delete"] as const) {
    app.post(`/schedules/:id/${op}`, async (c) => {
      const id = c.req.param("id");
      const path = `/v2/schedules/${encodeURIComponent(id)}${op === "delete" ? "" : `/${op}`}`;
      const r = await callApi(c, op === "delete" ? "DELETE" : "POST", path);
      const past = { pause: "paused", resume: "resumed", delete: "deleted" }[op];
      return done(c, "/console/schedules", r.ok ? "ok" : "error", r.ok ? `Schedule ${id} ${past}.` : `Could not ${op} ${id}: ${r.error}`);
    });
  }
}
