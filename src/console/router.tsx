/** @jsxImportSource hono/jsx */
/**
 * The web console at /console: server-rendered pages (Hono JSX) over the /v2 API, called in process with the
 * signed-in tenant's token (src/console/api.ts). Sessions and CSRF: src/console/session.ts.
 */
import { type Context, Hono, type Next } from "hono";
import { streamSSE } from "hono/streaming";
import { settings } from "../config";
import { describeCron, nextFires, parseCron } from "../core/cron";
import { ApiError } from "../core/errors";
import { devTenantsReady } from "../app";
import { DEV_TENANTS, resolveToken } from "../db/tenants";
import { CSS, JS } from "./assets";
import { type ConsoleEnv, ConsoleError, callApi } from "./api";
import { Page, time } from "./layout";
import { csrfProblem, readSession, sessionCookie } from "./session";
import { formOf, str } from "./forms";
import { dlqPages } from "./dlq";
import { logPages } from "./logs";
import { overviewPage } from "./overview";
import { publishPages } from "./publish";
import { resourcePages } from "./resources";
import { schedulePages } from "./schedules";
import { workflowPages } from "./workflows";

/** Where a sign-in may send the browser afterwards: console paths only. */
function safeNext(next: string | undefined): string {
  return next && /^\/console(\/[^\s\\]*)?(\?[^\s\\]*)?$/.test(next) && !next.startsWith("//") ? next : "/console";
}

function provision(c: Context<ConsoleEnv>): Promise<void> {
  return devTenantsReady(c.env);
}

function LoginPage(p: { error?: string; next: string; devMode: boolean }) {
  return (
    <Page title="Sign in" section="" session={null} flash={p.error ? { kind: "error", text: p.error } : null}>
      <div class="card" style="max-width:520px">
        <form method="post" action="/console/login">
          <input type="hidden" name="next" value={p.next} />
          <label for="token">Tenant token</label>
          <input id="token" name="token" type="password" autocomplete="current-password" required aria-describedby="token-hint" />
          <p class="muted small" id="token-hint">
            The token your API calls send as <code>Authorization: Bearer …</code> (QSTASH_TOKEN). A read-only token opens a
            read-only console.
          </p>
          <button type="submit" class="primary">
            Sign in
          </button>
        </form>
      </div>
      {p.devMode ? (
        <div class="card" style="max-width:520px">
          <h2>Dev tenants</h2>
          <p class="muted small">Dev mode is on: sign in as one of the public dev tenants in one click.</p>
          <div class="actions">
            {DEV_TENANTS.map((t) => (
              <form method="post" action="/console/login" class="inline">
                <input type="hidden" name="next" value={p.next} />
                <input type="hidden" name="dev" value={t.id} />
                <button type="submit">{t.name}</button>
              </form>
            ))}
          </div>
        </div>
      ) : null}
    </Page>
  );
}

export function consoleRouter(): Hono<ConsoleEnv> {
  const app = new Hono<ConsoleEnv>();

  app.onError((err, c) => {
    const status = err instanceof ConsoleError || err instanceof ApiError ? err.status : 500;
    if (status === 500) console.error("console error", err);
    const text = status === 500 ? "Something went wrong on the server; the worker's log has the details." : err.message;
    return c.html(
      <Page title={status === 404 ? "Not found" : "Error"} section="" session={c.get("session") ?? null} flash={{ kind: "error", text }}>
        <p>
          <a href="/console">Back to the overview</a>
        </p>
      </Page>,
      status as 400,
    );
  });

  // Every console response: no framing (clickjacking), scripts and forms from this origin only, no sniffing.
  app.use("*", async (c, next) => {
    await next();
    c.res.headers.set(
      "content-security-policy",
      "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
    );
    c.res.headers.set("x-frame-options", "DENY");
    c.res.headers.set("x-content-type-options", "nosniff");
    c.res.headers.set("referrer-policy", "same-origin");
  });

  // A form post is read whole before anything else: refuse one larger than a message could be.
  app.use("*", async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      const max = settings(c.env).maxMessageSize * 2 + 65_536;
      const length = Number(c.req.header("content-length") ?? "NaN");
      if (!Number.isFinite(length)) return c.json({ error: "a console form post must have a Content-Length" }, 411);
      if (length > max) return c.json({ error: `a console form post may be at most ${max} bytes (twice MAX_MESSAGE_SIZE, for a body typed into a form)` }, 413);
    }
    await next();
  });

  app.get("/assets/app.css", (c) => c.body(CSS, 200, { "content-type": "text/css; charset=utf-8", "cache-control": "public, max-age=300" }));
  app.get("/assets/app.js", (c) => c.body(JS, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "public, max-age=300" }));

  app.get("/login", async (c) => c.html(<LoginPage next={safeNext(c.req.query("next"))} devMode={settings(c.env).devMode} />));

  app.post("/login", async (c) => {
    const own = new URL(c.req.url).origin;
    const origin = c.req.header("origin");
    if (origin && origin !== own) return c.html(<LoginPage error="Sign-in refused: the form was sent from another site." next="/console" devMode={false} />, 403);
    const f = await formOf(c);
    const next = safeNext(str(f, "next"));
    const devMode = settings(c.env).devMode;
    await provision(c);
    let token = str(f, "token");
    const dev = str(f, "dev");
    if (dev) {
      const t = DEV_TENANTS.find((d) => d.id === dev);
      if (!devMode || !t) return c.html(<LoginPage error="Dev tenants are only offered in dev mode." next={next} devMode={devMode} />, 400);
      token = t.token;
    }
    if (!token) return c.html(<LoginPage error="Enter a tenant token." next={next} devMode={devMode} />, 400);
    const tenant = await resolveToken(c.env.DB, token, devMode);
    if (!tenant) return c.html(<LoginPage error="That token is not valid here." next={next} devMode={devMode} />, 401);
    console.log(JSON.stringify({ audit: "console sign-in", tenant: tenant.id, readOnly: tenant.readOnly }));
    c.header("Set-Cookie", sessionCookie(c.req.url, token));
    return c.redirect(next, 303);
  });

  // Everything below needs a session.
  app.use("*", async (c: Context<ConsoleEnv>, next: Next) => {
    await provision(c);
    const session = await readSession(c.env.DB, c.req.header("cookie"), settings(c.env).devMode);
    const read = c.req.method === "GET" || c.req.method === "HEAD";
    if (!session) {
      if (read && !c.req.path.startsWith("/console/tail") && !c.req.path.startsWith("/console/cron")) {
        const u = new URL(c.req.url);
        return c.redirect(`/console/login?next=${encodeURIComponent(u.pathname + u.search)}`, 303);
      }
      return c.json({ error: "sign in first: no console session" }, 401);
    }
    c.set("session", session);
    if (!read) {
      const f = await formOf(c);
      const sent = (f.get("_csrf") as string | null) ?? c.req.header("x-csrf-token") ?? null;
      const problem = csrfProblem(c.req.raw, session, typeof sent === "string" ? sent : null);
      if (problem) {
        console.log(JSON.stringify({ audit: "console CSRF refusal", tenant: session.tenant.id, path: c.req.path, problem }));
        return c.html(
          <Page title="Request refused" section="" session={session} flash={{ kind: "error", text: `Refused (CSRF check): ${problem}.` }}>
            <p>Nothing was changed.</p>
          </Page>,
          403,
        );
      }
    }
    c.header("cache-control", "no-store");
    await next();
  });

  app.post("/logout", (c) => {
    c.header("Set-Cookie", sessionCookie(c.req.url, null));
    return c.redirect("/console/login", 303);
  });

  /** The cron preview of the schedule form: the same parser as the API, five next fires, in words. */
  app.get("/cron", (c) => {
    try {
      const parsed = parseCron(c.req.query("expr"));
      const zone = parsed.timezone ?? "UTC";
      const fmt = new Intl.DateTimeFormat("en-GB", { timeZone: zone, dateStyle: "medium", timeStyle: "short" });
      return c.json({ words: describeCron(parsed), next: nextFires(parsed, Date.now(), 5).map((t) => `${fmt.format(t)} ${zone} (${time(t)})`) });
    } catch (err) {
      return c.json({ error: err instanceof Error ? err.message : String(err) }, 400);
    }
  });

  /**
   * The live tail: new log entries as Server-Sent Events, read through GET /v2/logs with the page's filters once a
   * second. A stream lasts at most a minute (one invocation stays short); the browser reconnects on its own, and
   * Last-Event-ID carries where it stopped.
   */
  app.get("/tail", (c) => {
    const query = new URLSearchParams(new URL(c.req.url).search);
    for (const k of ["cursor", "count", "order", "fromDate", "toDate"]) query.delete(k);
    for (const [k, v] of [...query.entries()]) if (v === "") query.delete(k);
    const lastId = Number(c.req.header("last-event-id"));
    let since = Number.isFinite(lastId) && lastId > 0 ? lastId : Date.now();
    return streamSSE(c, async (stream) => {
      const seen = new Set<string>();
      let open = true;
      stream.onAbort(() => {
        open = false;
      });
      const until = Date.now() + 60_000;
      await stream.writeSSE({ event: "ready", data: "{}", retry: 1000 });
      while (open && Date.now() < until) {
        const q = new URLSearchParams(query);
        q.set("fromDate", String(since - 2000));
        q.set("order", "asc");
        q.set("count", "200");
        const r = await callApi<{ logs: { time: number; messageId: string; state: string }[] }>(c, "GET", "/v2/logs", { query: q });
        if (!r.ok) {
          await stream.writeSSE({ event: "problem", data: JSON.stringify({ error: r.error }) });
          break;
        }
        for (const e of r.data.logs) {
          const key = `${e.messageId}.${e.time}.${e.state}`;
          if (seen.has(key)) continue;
          seen.add(key);
          since = Math.max(since, e.time);
          await stream.writeSSE({ event: "log", id: String(since), data: JSON.stringify(e) });
        }
        if (seen.size > 5000) seen.clear();
        await stream.sleep(1000);
      }
    });
  });

  overviewPage(app);
  logPages(app);
  dlqPages(app);
  schedulePages(app);
  resourcePages(app);
  publishPages(app);
  workflowPages(app);
  return app;
}
