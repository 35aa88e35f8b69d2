/** The Hono app: error shape, authentication, and one router per resource. */
import { Hono } from "hono";
import { getPath } from "hono/utils/url";
import { settings } from "./config";
import { ApiError } from "./core/errors";
import { shardEnv } from "./db/shards";
import { type BurstAnswer, limiterStub } from "./objects/limiter";
import { ensureDevTenants, resolveToken, type Tenant } from "./db/tenants";
import type { Env } from "./env";
import { CONSOLE_HEADER, setApi } from "./console/api";
import { consoleRouter } from "./console/router";
import { admin } from "./routes/admin";
import { batch } from "./routes/batch";
import { flowControl } from "./routes/flow-control";
import { queues } from "./routes/queues";
import { topics } from "./routes/topics";
import { dlq } from "./routes/dlq";
import { keys } from "./routes/keys";
import { logs } from "./routes/logs";
import { messages } from "./routes/messages";
import { publish } from "./routes/publish";
import { schedules } from "./routes/schedules";
import { webhook, workflows } from "./routes/workflows";
import { queueLagMs } from "./delivery/pressure";

export type AppEnv = { Bindings: Env; Variables: { tenant: Tenant } };

/** Dev tenants are provisioned once per isolate (idempotent inserts), not on every request. */
let devProvisioned: Promise<void> | null = null;

/** In dev mode, waits until the dev tenants exist (provisioning them once per isolate). */
export async function devTenantsReady(env: Env): Promise<void> {
  if (!settings(env).devMode) return;
  devProvisioned ??= ensureDevTenants(env.DB, Date.now()).catch((err) => {
    devProvisioned = null;
    throw err;
  });
  await devProvisioned;
}

/**
 * Management calls are burst-limited (BURST_RPS); publish, enqueue and batch are not: only the daily message quota
 * applies to them (contract §1.3).
 */
function isManagementCall(method: string, path: string): boolean {
  if (method === "POST" && (/^\/v2\/(publish|enqueue)\//i.test(path) || /^\/v2\/batch\/?$/i.test(path))) return false;
  return true;
}

function burstHeaders(b: BurstAnswer): Record<string, string> {
  return { "Burst-RateLimit-Limit": String(b.limit), "Burst-RateLimit-Remaining": String(b.remaining), "Burst-RateLimit-Reset": String(b.reset) };
}

function tokenOf(authorization: string | undefined, query: string | undefined): string | null {
  if (authorization) {
    const m = /^bearer\s+(.+)$/i.exec(authorization.trim());
    return (m ? m[1] : authorization).trim() || null;
  }
  return query && query !== "" ? query : null;
}

/** The resource segments of /v2, by their lower-case spelling. */
const RESOURCES = new Map(
  ["publish", "enqueue", "batch", "messages", "dlq", "events", "logs", "keys", "schedules", "queues", "topics",
    "flowControl", "globalParallelism", "workflows", "wait", "notify", "waiters", "trigger"].map((r) => [r.toLowerCase(), r]),
);

/**
 * The request path with the resource segment after /v2 in its canonical spelling: the Go SDK sends
 * `/v2/Schedules/...` for some calls, and hosted QStash answers them. Ids and names after it keep their case.
 */
export function routingPath(request: Request): string {
  const path = getPath(request);
  const m = /^\/v2\/([^/]+)/.exec(path);
  if (!m) return path;
  const canonical = RESOURCES.get(m[1].toLowerCase());
  // A publish or enqueue reads its destination from the raw URL (destinationFromRawUrl), never from the routing path:
  // routing it on a stand-in for the destination spares the router a walk over every segment of that URL.
  if ((canonical === "publish" || canonical === "enqueue") && path.length > m[0].length + 1 && path[m[0].length] === "/") return `/v2/${canonical}/-`;
  return canonical && canonical !== m[1] ? `/v2/${canonical}${path.slice(m[0].length)}` : path;
}

export function buildApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>({ getPath: routingPath });

  app.onError((err, c) => {
    if (err instanceof ApiError) return c.json({ error: err.message }, err.status as 400, err.headers);
    console.error("unexpected error", err);
    return c.json({ error: "internal error" }, 500);
  });
  app.notFound((c) => c.json({ error: `not found: ${c.req.method} ${new URL(c.req.url).pathname}` }, 404));

  app.get("/", (c) => c.json({ name: "boomerang", api: "/v2" }));
  app.route("/admin", admin);
  setApi(app);
  app.route("/console", consoleRouter());

  // Push-back: past MAX_INFLIGHT_PUBLISHES publish calls under way in this isolate, a publish is refused at once with
  // 503 and Retry-After, before any work, instead of waiting in a line that only grows (docs/architecture.md,
  // "Push-back"). Nothing refused was stored: the client publishes it again.
  let publishesInFlight = 0;
  app.use("/v2/*", async (c, next) => {
    if (isManagementCall(c.req.method, c.req.path)) return next();
    const s = settings(c.env);
    const max = s.maxInflightPublishes;
    const lag = s.maxQueueLagMs === null ? 0 : queueLagMs();
    if (publishesInFlight >= max || (s.maxQueueLagMs !== null && lag > s.maxQueueLagMs)) {
      // Read what was sent (up to 1 MiB) so the connection stays usable: a body left unread makes the runtime close
      // it, and the client's next request on it would meet a reset instead of an answer.
      if (Number(c.req.header("content-length") ?? "0") <= 1 << 20) await c.req.raw.arrayBuffer().catch(() => undefined);
      const why = publishesInFlight >= max ? `${max} publishes under way here, MAX_INFLIGHT_PUBLISHES` : `deliveries lag ${lag} ms behind, MAX_QUEUE_LAG`;
      return c.json({ error: `Boomerang is at capacity (${why}); nothing was stored, retry after 1 s` }, 503, { "Retry-After": "1" });
    }
    publishesInFlight++;
    try {
      await next();
    } finally {
      publishesInFlight--;
    }
  });

  // A workflow run's webhook is called by third parties, with no token (src/routes/workflows.ts).
  app.all("/v2/workflows/hooks/:userId/:runId/:eventId", webhook);

  app.use("/v2/*", async (c, next) => {
    const s = settings(c.env);
    await devTenantsReady(c.env);
    const token = tokenOf(c.req.header("authorization"), c.req.query("qstash_token"));
    const tenant = token ? await resolveToken(c.env.DB, token, s.devMode) : null;
    if (!tenant) return c.json({ error: "Unauthorized" }, 401);
    if (tenant.readOnly && c.req.method !== "GET" && c.req.method !== "HEAD") {
      return c.json({ error: "this token is read-only: it cannot publish, change or delete anything" }, 403);
    }
    c.set("tenant", tenant);
    // From here on, DB is the tenant's shard (src/db/shards.ts).
    c.env = shardEnv(c.env, tenant.shard);
    const burst = s.burstRps !== null && isManagementCall(c.req.method, c.req.path) ? await limiterStub(c.env, tenant.id).take(s.burstRps) : null;
    if (burst && !burst.ok) {
      throw new ApiError(
        429,
        `burst rate limit exceeded: at most ${burst.limit} management calls per second per tenant (BURST_RPS); retry after ${new Date(burst.reset * 1000).toISOString()}`,
        burstHeaders(burst),
      );
    }
    await next();
    // An audit line for every change made through the API, by a client or by the console (which calls the API).
    if (c.req.method !== "GET" && c.req.method !== "HEAD" && isManagementCall(c.req.method, c.req.path)) {
      const via = c.req.header(CONSOLE_HEADER) === "1" ? "console" : "api";
      console.log(JSON.stringify({ audit: `${c.req.method} ${c.req.path}`, via, tenant: tenant.id, status: c.res.status }));
    }
    if (burst) for (const [k, v] of Object.entries(burstHeaders(burst))) c.res.headers.set(k, v);
  });

  app.route("/v2", publish);
  app.route("/v2", messages);
  app.route("/v2", dlq);
  app.route("/v2", logs);
  app.route("/v2", keys);
  app.route("/v2", schedules);
  app.route("/v2", queues);
  app.route("/v2", topics);
  app.route("/v2", batch);
  app.route("/v2", flowControl);
  app.route("/v2", workflows);
  return app;
}
