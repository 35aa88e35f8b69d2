/** @jsxImportSource hono/jsx */
/** Queues (parallelism, pause, resume, waiting messages), URL groups (endpoints) and flow-control keys. */
import type { Hono } from "hono";
import { type ConsoleEnv, callApi, readApi } from "./api";
import { done, formOf, str, takeFlash } from "./forms";
import { Action, Badge, Csrf, Field, Page, Time } from "./layout";
import type { LogEntry } from "./logs";

interface QueueView {
  name: string;
  parallelism: number;
  lag: number;
  paused: boolean;
  createdAt: number;
}
interface GroupView {
  name: string;
  endpoints: { url?: string; name?: string }[];
  createdAt: number;
}
interface FlowView {
  flowControlKey: string;
  waitListSize: number;
  parallelismMax: number;
  parallelismCount: number;
  rateMax: number;
  rateCount: number;
  ratePeriod: number;
  isPaused: boolean;
  isPinnedParallelism: boolean;
  isPinnedRate: boolean;
}

const FINISHED = new Set(["DELIVERED", "FAILED", "CANCELED"]);
const enc = encodeURIComponent;

export function resourcePages(app: Hono<ConsoleEnv>): void {
  app.get("/queues", async (c) => {
    const s = c.get("session");
    const list = await readApi<QueueView[]>(c, "/v2/queues");
    return c.html(
      <Page title="Queues" section="/console/queues" session={s} flash={takeFlash(c)}>
        {list.length === 0 ? <p class="muted">No queues yet. A queue is made by its first enqueue, or here.</p> : null}
        {list.length ? (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Queue</th>
                  <th>Parallelism</th>
                  <th>Waiting</th>
                  <th>State</th>
                  <th>Actions</th>
                </tr>
              </thead>
              <tbody>
                {list.map((q) => (
                  <tr data-queue={q.name}>
                    <td>
                      <a href={`/console/queues/${enc(q.name)}`}>{q.name}</a>
                    </td>
                    <td>{q.parallelism}</td>
                    <td>{q.lag}</td>
                    <td>
                      <Badge state={q.paused ? "paused" : "active"} />
                    </td>
                    <td>
                      <div class="actions">
                        <Action session={s} action={`/console/queues/${enc(q.name)}/${q.paused ? "resume" : "pause"}`} label={q.paused ? "Resume" : "Pause"} />
                        <Action session={s} action={`/console/queues/${enc(q.name)}/delete`} label="Delete" danger confirm={`Delete queue ${q.name}? Its waiting messages are cancelled.`} />
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
        {s.tenant.readOnly ? null : (
          <form method="post" action="/console/queues" class="card" style="margin-top:1rem">
            <h2>Create or change a queue</h2>
            <Csrf session={s} />
            <div class="fields">
              <Field name="queueName" label="Queue name" required />
              <Field name="parallelism" label="Parallelism" type="number" value={1} />
              <div>
                <button type="submit" class="primary">
                  Save queue
                </button>
              </div>
            </div>
          </form>
        )}
      </Page>,
    );
  });

  app.get("/queues/:name", async (c) => {
    const s = c.get("session");
    const name = c.req.param("name");
    const [q, log] = await Promise.all([
      readApi<QueueView>(c, `/v2/queues/${enc(name)}`),
      readApi<{ logs: LogEntry[] }>(c, "/v2/logs", { queueName: name, count: "1000" }),
    ]);
    // The newest entry of each message says whether it still waits.
    const latest = new Map<string, LogEntry>();
    for (const e of log.logs) if (!latest.has(e.messageId)) latest.set(e.messageId, e);
    const waiting = [...latest.values()].filter((e) => !FINISHED.has(e.state));
    return c.html(
      <Page title={`Queue ${q.name}`} section="/console/queues" session={s} flash={takeFlash(c)}>
        <div class="card">
          <div class="actions">
            <Badge state={q.paused ? "paused" : "active"} /> parallelism {q.parallelism}, {q.lag} waiting
            <Action session={s} action={`/console/queues/${enc(q.name)}/${q.paused ? "resume" : "pause"}`} label={q.paused ? "Resume" : "Pause"} />
          </div>
        </div>
        <h2>Waiting messages</h2>
        {waiting.length ? (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Message</th>
                  <th>State</th>
                  <th>Since (UTC)</th>
                  <th class="hide-sm">URL</th>
                </tr>
              </thead>
              <tbody>
                {waiting.map((e) => (
                  <tr>
                    <td>
                      <a class="mono small" href={`/console/messages/${enc(e.messageId)}`}>
                        {e.messageId}
                      </a>
                    </td>
                    <td>
                      <Badge state={e.state} />
                    </td>
                    <td class="small">
                      <Time ms={e.time} />
                    </td>
                    <td class="hide-sm small mono">{e.url}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : (
          <p class="muted">Nothing waits in this queue.</p>
        )}
        <p>
          <a href={`/console/logs?queueName=${enc(q.name)}`}>All of this queue's logs</a>
        </p>
      </Page>,
    );
  });

  app.post("/queues", async (c) => {
    const f = await formOf(c);
    const parallelism = Number(str(f, "parallelism") || "1");
    const body = JSON.stringify({ queueName: str(f, "queueName"), parallelism: Number.isFinite(parallelism) ? parallelism : str(f, "parallelism") });
    const r = await callApi(c, "POST", "/v2/queues", { body, headers: { "content-type": "application/json" } });
    return done(c, "/console/queues", r.ok ? "ok" : "error", r.ok ? `Queue ${str(f, "queueName")} saved.` : `The queue was not saved: ${r.error}`);
  });

  for (const op of ["pause", "resume", "delete"] as const) {
    app.post(`/queues/:name/${op}`, async (c) => {
      const name = c.req.param("name");
      const r = await callApi(c, op === "delete" ? "DELETE" : "POST", `/v2/queues/${enc(name)}${op === "delete" ? "" : `/${op}`}`);
      const to = op === "delete" ? "/console/queues" : c.req.header("referer")?.includes(`/console/queues/${enc(name)}`) ? `/console/queues/${enc(name)}` : "/console/queues";
      return done(c, to, r.ok ? "ok" : "error", r.ok ? `Queue ${name}: ${op} done.` : `Could not ${op} ${name}: ${r.error}`);
    });
  }

  app.get("/topics", async (c) => {
    const s = c.get("session");
    const list = await readApi<GroupView[]>(c, "/v2/topics");
    return c.html(
      <Page title="URL groups" section="/console/topics" session={s} flash={takeFlash(c)}>
        {list.length === 0 ? <p class="muted">No URL groups yet.</p> : null}
        {list.map((g) => (
          <div class="card" data-group={g.name}>
            <h2>{g.name}</h2>
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th>Endpoint URL</th>
                    <th>Name</th>
                    <th>Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {g.endpoints.map((e) => (
                    <tr>
                      <td class="mono small">{e.url ?? "–"}</td>
                      <td>{e.name ?? ""}</td>
                      <td>
                        <Action
                          session={s}
                          action={`/console/topics/${enc(g.name)}/remove`}
                          label="Remove"
                          danger
                          fields={{ url: e.url ?? "", name: e.name ?? "" }}
                          confirm="Remove this endpoint?"
                        />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <p class="small">
              <a href={`/console/logs?topicName=${enc(g.name)}`}>Logs of this group</a>
            </p>
          </div>
        ))}
        {s.tenant.readOnly ? null : (
          <form method="post" action="/console/topics/add" class="card">
            <h2>Add an endpoint</h2>
            <p class="muted small">Adding to a group that does not exist creates it.</p>
            <Csrf session={s} />
            <div class="fields">
              <Field name="group" label="URL group" required />
              <Field name="url" label="Endpoint URL" type="url" required />
              <Field name="name" label="Endpoint name (optional)" />
              <div>
                <button type="submit" class="primary">
                  Add endpoint
                </button>
              </div>
            </div>
          </form>
        )}
      </Page>,
    );
  });

  app.post("/topics/add", async (c) => {
    const f = await formOf(c);
    const group = str(f, "group");
    const endpoint: Record<string, string> = { url: str(f, "url") };
    if (str(f, "name")) endpoint.name = str(f, "name");
    const r = await callApi(c, "POST", `/v2/topics/${enc(group)}/endpoints`, { body: JSON.stringify({ endpoints: [endpoint] }), headers: { "content-type": "application/json" } });
    return done(c, "/console/topics", r.ok ? "ok" : "error", r.ok ? `Endpoint added to ${group}.` : `The endpoint was not added: ${r.error}`);
  });

  app.post("/topics/:name/remove", async (c) => {
    const f = await formOf(c);
    const group = c.req.param("name");
    const endpoint: Record<string, string> = {};
    if (str(f, "url")) endpoint.url = str(f, "url");
    if (str(f, "name")) endpoint.name = str(f, "name");
    const r = await callApi(c, "DELETE", `/v2/topics/${enc(group)}/endpoints`, { body: JSON.stringify({ endpoints: [endpoint] }), headers: { "content-type": "application/json" } });
    return done(c, "/console/topics", r.ok ? "ok" : "error", r.ok ? `Endpoint removed from ${group}.` : `The endpoint was not removed: ${r.error}`);
  });

  app.get("/flow-control", async (c) => {
    const s = c.get("session");
    const search = c.req.query("search")?.trim();
    const list = await readApi<FlowView[]>(c, "/v2/flowControl", search ? { search } : undefined);
    return c.html(
      <Page title="Flow control" section="/console/flow-control" session={s} flash={takeFlash(c)}>
        <form method="get" action="/console/flow-control" class="card" aria-label="Search keys">
          <div class="fields">
            <Field name="search" label="Key contains" value={search} />
            <div>
              <button type="submit">Search</button>
            </div>
          </div>
        </form>
        {list.length === 0 ? (
          <p class="muted">No flow-control keys. A key exists once a message used it.</p>
        ) : (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Key</th>
                  <th>Parallelism in use</th>
                  <th>Rate in use</th>
                  <th>Waiting</th>
                  <th>State</th>
                  <th>Actions</th>
                </tr>
              </thead>
              <tbody>
                {list.map((k) => (
                  <tr data-flow-key={k.flowControlKey}>
                    <td class="mono small">
                      <a href={`/console/logs?flowControlKey=${enc(k.flowControlKey)}`}>{k.flowControlKey}</a>
                    </td>
                    <td>
                      {k.parallelismCount} / {k.parallelismMax || "∞"}
                      {k.isPinnedParallelism ? <span class="badge s-paused"> pinned</span> : null}
                    </td>
                    <td>
                      {k.rateCount} / {k.rateMax || "∞"} per {k.ratePeriod}s{k.isPinnedRate ? <span class="badge s-paused"> pinned</span> : null}
                    </td>
                    <td>{k.waitListSize}</td>
                    <td>
                      <Badge state={k.isPaused ? "paused" : "active"} />
                    </td>
                    <td>
                      <div class="actions">
                        <Action session={s} action={`/console/flow-control/${enc(k.flowControlKey)}/${k.isPaused ? "resume" : "pause"}`} label={k.isPaused ? "Resume" : "Pause"} />
                        {k.isPinnedParallelism || k.isPinnedRate ? (
                          <Action session={s} action={`/console/flow-control/${enc(k.flowControlKey)}/unpin`} label="Unpin" />
                        ) : null}
                        <Action session={s} action={`/console/flow-control/${enc(k.flowControlKey)}/reset`} label="Reset" danger confirm="Reset this key's counters and pins?" />
                      </div>
                      {s.tenant.readOnly ? null : (
                        <form method="post" action={`/console/flow-control/${enc(k.flowControlKey)}/pin`} class="actions small" style="margin-top:.4rem">
                          <Csrf session={s} />
                          <label class="small" for={`pin-p-${k.flowControlKey}`} style="display:inline">
                            Pin parallelism
                          </label>
                          <input id={`pin-p-${k.flowControlKey}`} type="number" name="parallelism" min="1" style="width:5rem" />
                          <label class="small" for={`pin-r-${k.flowControlKey}`} style="display:inline">
                            rate
                          </label>
                          <input id={`pin-r-${k.flowControlKey}`} type="number" name="rate" min="1" style="width:5rem" />
                          <button type="submit">Pin</button>
                        </form>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Page>,
    );
  });

  for (const op of ["pause", "resume", "unpin", "reset", "pin"] as const) {
    app.post(`/flow-control/:key/${op}`, async (c) => {
      const key = c.req.param("key");
      const query: Record<string, string> = op === "unpin" ? { parallelism: "true", rate: "true" } : {};
      if (op === "pin") {
        const f = await formOf(c);
        if (str(f, "parallelism")) query.parallelism = str(f, "parallelism");
        if (str(f, "rate")) query.rate = str(f, "rate");
      }
      const r = await callApi(c, "POST", `/v2/flowControl/${enc(key)}/${op}`, { query });
      return done(c, "/console/flow-control", r.ok ? "ok" : "error", r.ok ? `${key}: ${op} done.` : `Could not ${op} ${key}: ${r.error}`);
    });
  }
}
