/**
 * The authorization matrix (contract §1.2, §1.3, D19): every /v2 endpoint is called by four callers that
 * must not reach tenant A's data — no token, a wrong token, tenant B's token and A's read-only token — and
 * each answer is checked, then A's resources are read back with A's own token to prove nothing changed.
 */
import { env } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../src/app";
import type { NewTenant } from "../../src/db/tenants";
import { api as callApi, publishOk as publishOkVia, dest, freshTenant, uniqueKey, waitFor } from "./helpers";

/**
 * Calls the worker's fetch handler in-process (see helpers.api) and waits for the work each request left
 * running, so that no call sees another's leftovers.
 */
const api = (path: string, init: RequestInit & { token: string | null }) => callApi(path, { ...init, settle: true });
const publishOk = (destination: string, init: RequestInit & { token: string }) => publishOkVia(destination, { ...init, settle: true });

/** The ids and names of tenant A's resources, created once in beforeAll. */
interface Ids {
  /** A pending message, delayed by an hour, with a label and a flow-control key. */
  msg: string;
  /** The message that failed into the DLQ. */
  failedMsg: string;
  dlq: string;
  schedule: string;
  queue: string;
  group: string;
  fc: string;
  label: string;
  /** A destination URL on the local destination server; its path contains the tag. */
  dest: string;
  /** The one endpoint URL of A's URL group. */
  endpoint: string;
  /** A's workflow run (started, never ended: its endpoint is a plain destination), and an event id. */
  run: string;
  event: string;
}

/**
 * How an endpoint relates to tenant A's data, which decides what tenant B may get:
 * - single: names one of A's resources; B must get a 404.
 * - list: lists or reads B's own data; B gets a 2xx that mentions nothing of A.
 * - bulk: a mutation by filter; B gets a 2xx that touched nothing (count 0), and A's data is intact.
 * - create: creates or replaces a resource in B's own namespace, possibly under the same name as A's one;
 *   B may succeed, A's resource must be unchanged. B's copy is removed again afterwards.
 * - own: acts on B's own tenant-wide state (key rotation); A's state is unchanged.
 * - idempotent: deletes a named resource (queue, schedule, URL group or its endpoints); deletes are idempotent, so
 *   B gets the 200 of deleting something it does not have, and A's resource is intact.
 * - batch: POST /v2/batch answers 200 with one error object per failed entry (D18).
 */
type Kind = "single" | "list" | "bulk" | "create" | "own" | "batch" | "idempotent";

interface Endpoint {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  /** Path template; {name} is replaced by the value of that key of Ids (URL-encoded where it is a name). */
  path: string;
  kind: Kind;
  headers?: Record<string, string>;
  body?: (ids: Ids) => string;
  /** For "create": the calls (with B's token) that remove what B created. */
  cleanup?: (ids: Ids) => [string, string][];
  /** For "single": the statuses B may get; 404 unless stated. */
  statusForB?: number[];
  /** A single read whose answer does not name the resource (the lazy-fetch history names messages, not the run). */
  unnamed?: boolean;
}

const json = { "content-type": "application/json" };
/** Never fires during a test run (once a year, at New Year). */
const RARE_CRON = "0 0 1 1 *";

/** Every /v2 route of the API (src/routes/*), with A's ids filled in where the route names a resource. */
const ENDPOINTS: Endpoint[] = [
  // Messages.
  { method: "GET", path: "/v2/messages/{msg}", kind: "single" },
  { method: "DELETE", path: "/v2/messages/{msg}", kind: "single" },
  { method: "DELETE", path: "/v2/messages", kind: "bulk" },
  { method: "DELETE", path: "/v2/messages?messageId={msg}", kind: "bulk" },
  { method: "DELETE", path: "/v2/messages?label={label}", kind: "bulk" },
  { method: "DELETE", path: "/v2/messages?flowControlKey={fc}", kind: "bulk" },
  // Publish, enqueue, batch.
  { method: "POST", path: "/v2/publish/{group}", kind: "single", headers: { "upstash-delay": "1h" } },
  {
    method: "POST",
    path: "/v2/publish/{dest}",
    kind: "create",
    headers: { "upstash-delay": "1h" },
    cleanup: () => [["DELETE", "/v2/messages"]],
  },
  {
    method: "POST",
    path: "/v2/enqueue/{queue}/{dest}",
    kind: "create",
    headers: { "upstash-delay": "1h" },
    cleanup: (ids) => [
      ["DELETE", "/v2/messages"],
      ["DELETE", `/v2/queues/${ids.queue}`],
    ],
  },
  {
    method: "POST",
    path: "/v2/batch",
    kind: "batch",
    headers: json,
    body: (ids) => JSON.stringify([{ destination: ids.group, headers: { "Upstash-Delay": "1h" } }]),
  },
  // Dead-letter queue.
  { method: "GET", path: "/v2/dlq", kind: "list" },
  { method: "GET", path: "/v2/dlq?dlqIds={dlq}", kind: "list" },
  { method: "GET", path: "/v2/dlq?messageId={failedMsg}", kind: "list" },
  { method: "GET", path: "/v2/dlq/{dlq}", kind: "single" },
  { method: "DELETE", path: "/v2/dlq/{dlq}", kind: "single" },
  { method: "DELETE", path: "/v2/dlq", kind: "bulk" },
  { method: "DELETE", path: "/v2/dlq?dlqIds={dlq}", kind: "bulk" },
  { method: "POST", path: "/v2/dlq/retry/{dlq}", kind: "single" },
  { method: "POST", path: "/v2/dlq/retry", kind: "bulk" },
  { method: "POST", path: "/v2/dlq/retry?dlqIds={dlq}", kind: "bulk" },
  // Logs.
  { method: "GET", path: "/v2/logs", kind: "list" },
  { method: "GET", path: "/v2/logs?messageId={msg}", kind: "list" },
  { method: "GET", path: "/v2/events", kind: "list" },
  { method: "GET", path: "/v2/events?label={label}", kind: "list" },
  // Signing keys.
  { method: "GET", path: "/v2/keys", kind: "list" },
  { method: "POST", path: "/v2/keys/rotate", kind: "own" },
  // Schedules.
  {
    method: "POST",
    path: "/v2/schedules/{dest}",
    kind: "create",
    headers: { "upstash-cron": RARE_CRON, "upstash-schedule-id": "{schedule}", "upstash-delay": "1h" },
    cleanup: (ids) => [["DELETE", `/v2/schedules/${ids.schedule}`]],
  },
  { method: "GET", path: "/v2/schedules", kind: "list" },
  { method: "GET", path: "/v2/schedules/{schedule}", kind: "single" },
  { method: "DELETE", path: "/v2/schedules/{schedule}", kind: "idempotent" },
  { method: "POST", path: "/v2/schedules/{schedule}/pause", kind: "single" },
  { method: "PATCH", path: "/v2/schedules/{schedule}/pause", kind: "single" },
  { method: "POST", path: "/v2/schedules/{schedule}/resume", kind: "single" },
  { method: "PATCH", path: "/v2/schedules/{schedule}/resume", kind: "single" },
  // Queues.
  {
    method: "POST",
    path: "/v2/queues",
    kind: "create",
    headers: json,
    body: (ids) => JSON.stringify({ queueName: ids.queue, parallelism: 7, paused: true }),
    cleanup: (ids) => [["DELETE", `/v2/queues/${ids.queue}`]],
  },
  { method: "GET", path: "/v2/queues", kind: "list" },
  { method: "GET", path: "/v2/queues/{queue}", kind: "single" },
  { method: "DELETE", path: "/v2/queues/{queue}", kind: "idempotent" },
  { method: "POST", path: "/v2/queues/{queue}/pause", kind: "single" },
  { method: "POST", path: "/v2/queues/{queue}/resume", kind: "single" },
  // URL groups.
  {
    method: "POST",
    path: "/v2/topics/{group}/endpoints",
    kind: "create",
    headers: json,
    body: (ids) => JSON.stringify({ endpoints: [{ url: `${ids.endpoint}-intruder`, name: "intruder" }] }),
    cleanup: (ids) => [["DELETE", `/v2/topics/${ids.group}`]],
  },
  {
    method: "DELETE",
    path: "/v2/topics/{group}/endpoints",
    kind: "idempotent",
    headers: json,
    body: (ids) => JSON.stringify({ endpoints: [{ url: ids.endpoint }] }),
  },
  { method: "GET", path: "/v2/topics", kind: "list" },
  { method: "GET", path: "/v2/topics/{group}", kind: "single" },
  { method: "DELETE", path: "/v2/topics/{group}", kind: "idempotent" },
  // Contract §2.9: PATCH sets a group's default headers; tenant B's call finds no such group (404).
  {
    method: "PATCH",
    path: "/v2/topics/{group}",
    kind: "single",
    headers: json,
    body: () => JSON.stringify({ headers: { "Upstash-Retries": "1" } }),
  },
  // Flow control and global parallelism.
  { method: "GET", path: "/v2/flowControl", kind: "list" },
  { method: "GET", path: "/v2/flowControl?search={fc}", kind: "list" },
  { method: "GET", path: "/v2/flowControl/{fc}", kind: "single" },
  { method: "POST", path: "/v2/flowControl/{fc}/pause", kind: "single" },
  { method: "POST", path: "/v2/flowControl/{fc}/resume", kind: "single" },
  { method: "POST", path: "/v2/flowControl/{fc}/pin?parallelism=2&rate=3&period=60", kind: "single" },
  { method: "POST", path: "/v2/flowControl/{fc}/unpin?parallelism=true&rate=true", kind: "single" },
  { method: "POST", path: "/v2/flowControl/{fc}/resetRate", kind: "single" },
  { method: "POST", path: "/v2/flowControl/{fc}/reset", kind: "single" },
  { method: "GET", path: "/v2/globalParallelism", kind: "list" },
  // Upstash Workflow.
  { method: "GET", path: "/v2/workflows/runs/{run}", kind: "single", unnamed: true },
  { method: "DELETE", path: "/v2/workflows/runs/{run}?cancel=true", kind: "single" },
  { method: "DELETE", path: "/v2/workflows/runs?workflowRunIds={run}", kind: "bulk" },
  { method: "DELETE", path: "/v2/workflows/runs", kind: "bulk" },
  { method: "GET", path: "/v2/workflows/events?workflowRunId={run}", kind: "list" },
  { method: "GET", path: "/v2/workflows/logs", kind: "list" },
  {
    method: "POST",
    path: "/v2/wait/{event}",
    kind: "single",
    statusForB: [400],
    headers: { "upstash-workflow-runid": "{run}", ...json },
    body: (ids) => JSON.stringify({ url: ids.dest, timeout: "1h", step: { stepId: 1, stepName: "w", stepType: "Wait", concurrent: 1 } }),
  },
  { method: "POST", path: "/v2/notify/{event}", kind: "bulk", body: () => "data" },
  { method: "POST", path: "/v2/notify/{run}/{event}", kind: "single", body: () => "data" },
  { method: "GET", path: "/v2/waiters/{event}", kind: "list" },
  { method: "GET", path: "/v2/workflows/dlq", kind: "list" },
  { method: "DELETE", path: "/v2/workflows/dlq?dlqIds={dlq}", kind: "bulk" },
  { method: "POST", path: "/v2/workflows/dlq/resume?dlqIds={dlq}", kind: "bulk" },
  { method: "POST", path: "/v2/workflows/dlq/restart?dlqIds={dlq}", kind: "bulk" },
  { method: "POST", path: "/v2/workflows/dlq/resume/{dlq}", kind: "single" },
  { method: "POST", path: "/v2/workflows/dlq/restart/{dlq}", kind: "single" },
  { method: "POST", path: "/v2/workflows/dlq/callback/{dlq}", kind: "single" },
];

/** Tables whose rows of tenant A are counted before and after each call. */
const COUNTED_TABLES = [
  "messages",
  "workflow_runs",
  "workflow_waiters",
  "log_marks",
  "dlq",
  "schedules",
  "queues",
  "topics",
  "topic_endpoints",
  "flow_control_keys",
  "dedup",
  "tokens",
  "signing_keys",
] as const;

let a: NewTenant;
let b: NewTenant;
let ids: Ids;
/** A's resources as read with A's token right after setup. */
let baseline: Snapshot;
/** A token-shaped string that belongs to nobody. */
const WRONG_TOKEN = "wrongTokenAbcdefghijklmnopqrstuvwxyz0123456789XY";

function fill(template: string, values: Ids): string {
  return template.replace(/\{(\w+)\}/g, (_, key: string) => values[key as keyof Ids]);
}

function fillHeaders(headers: Record<string, string> | undefined, values: Ids): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) out[k] = fill(v, values);
  return out;
}

/** Calls an endpoint of the matrix; `token` null sends no credentials at all. */
async function call(e: Endpoint, token: string | null, extraQuery = ""): Promise<Response> {
  let path = fill(e.path, ids);
  if (extraQuery) path += (path.includes("?") ? "&" : "?") + extraQuery;
  return api(path, { method: e.method, token, headers: fillHeaders(e.headers, ids), body: e.body?.(ids) });
}

interface Snapshot {
  reads: Record<string, { status: number; body: unknown }>;
  counts: Record<string, number>;
}

/** Everything of tenant A's that the matrix could damage, read with A's read-write token and from D1. */
async function snapshot(): Promise<Snapshot> {
  const reads: Snapshot["reads"] = {};
  const paths = [
    `/v2/messages/${ids.msg}`,
    `/v2/dlq/${ids.dlq}`,
    `/v2/schedules/${ids.schedule}`,
    `/v2/queues/${ids.queue}`,
    `/v2/topics/${ids.group}`,
    `/v2/flowControl/${ids.fc}`,
    `/v2/keys`,
    `/v2/workflows/runs/${ids.run}`,
  ];
  for (const p of paths) {
    const res = await api(p, { token: a.token });
    reads[p] = { status: res.status, body: await res.json() };
  }
  const counts: Record<string, number> = {};
  for (const table of COUNTED_TABLES) {
    const n = await env.DB.prepare(`SELECT count(*) AS n FROM ${table} WHERE tenant_id = ?1`).bind(a.tenantId).first<number>("n");
    counts[table] = Number(n);
  }
  return { reads, counts };
}

/** Strings that would reveal tenant A's data if they appeared in an answer to someone else. */
function secretsOfA(): string[] {
  return [ids.msg, ids.failedMsg, ids.dlq, ids.schedule, ids.queue, ids.group, ids.fc, ids.label, ids.dest, ids.run, a.tenantId,
    a.currentSigningKey, a.nextSigningKey];
}

/** Server-generated ids of A (not names that B may legitimately choose for its own resources). */
function generatedIdsOfA(): string[] {
  return [ids.msg, ids.failedMsg, ids.dlq, ids.run, a.tenantId, a.currentSigningKey, a.nextSigningKey];
}

function tokens(): string[] {
  return [a.token, a.readOnlyToken, b.token, b.readOnlyToken, WRONG_TOKEN];
}

function label(e: Endpoint): string {
  return `${e.method} ${e.path}`;
}

/** Reads a response once, checking that it never echoes a token. */
async function readChecked(res: Response, what: string): Promise<string> {
  const text = await res.text();
  for (const t of tokens()) expect(text.includes(t), `${what}: the answer contains a token`).toBe(false);
  return text;
}

function expectJsonError(res: Response, text: string, what: string): { error: string } {
  expect(res.headers.get("content-type") ?? "", `${what}: content type`).toContain("application/json");
  const body = JSON.parse(text) as { error?: unknown };
  expect(typeof body.error, `${what}: {"error": string}`).toBe("string");
  return body as { error: string };
}

beforeAll(async () => {
  a = await freshTenant();
  b = await freshTenant();
  const tag = uniqueKey("authz");
  const partial = {
    schedule: `${tag}-sched`,
    queue: `${tag}-queue`,
    group: `${tag}-group`,
    fc: `${tag}-fc`,
    label: `${tag}-label`,
    dest: dest(`${tag}/ok`),
    endpoint: dest(`${tag}-endpoint/ok`),
  };
  const msg = await publishOk(partial.dest, {
    token: a.token,
    headers: {
      "upstash-delay": "1h",
      "upstash-label": partial.label,
      "upstash-flow-control-key": partial.fc,
      "upstash-flow-control-value": "parallelism=1",
    },
  });
  const failedMsg = await publishOk(dest(`${tag}-fail/status/500`), { token: a.token, headers: { "upstash-retries": "0" } });
  const schedule = await api(`/v2/schedules/${partial.dest}`, {
    method: "POST",
    token: a.token,
    headers: { "upstash-cron": RARE_CRON, "upstash-schedule-id": partial.schedule, "upstash-delay": "1h" },
  });
  expect(schedule.status).toBe(200);
  const queue = await api("/v2/queues", {
    method: "POST",
    token: a.token,
    headers: json,
    body: JSON.stringify({ queueName: partial.queue, parallelism: 1, paused: false }),
  });
  expect(queue.status).toBe(200);
  const group = await api(`/v2/topics/${partial.group}/endpoints`, {
    method: "POST",
    token: a.token,
    headers: json,
    body: JSON.stringify({ endpoints: [{ url: partial.endpoint, name: "main" }] }),
  });
  expect(group.status).toBe(200);
  // The DLQ entry, and the FAILED log entry that ends the failed message's history (so A's counts are stable).
  const dlq = await waitFor("A's DLQ entry", async () => {
    const res = await api(`/v2/dlq?messageId=${failedMsg}`, { token: a.token });
    const body = await res.json<{ messages: { dlqId: string }[] }>();
    return body.messages[0]?.dlqId;
  });
  await waitFor("A's failed message to be logged FAILED", async () => {
    const res = await api(`/v2/logs?messageId=${failedMsg}`, { token: a.token });
    const body = await res.json<{ logs: { state: string }[] }>();
    return body.logs.some((l) => l.state === "FAILED");
  });
  // A workflow run of A: its first message goes to a plain destination, so the run stays started.
  const run = `wfr_${tag}`;
  await publishOk(partial.dest, {
    token: a.token,
    headers: { "upstash-workflow-runid": run, "upstash-workflow-init": "true", "upstash-workflow-url": partial.dest, "upstash-delay": "1h" },
  });
  ids = { ...partial, msg, failedMsg, dlq, run, event: `${tag}-event` };
  baseline = await snapshot();
  // Sanity: every resource the matrix aims at exists for A.
  for (const [path, read] of Object.entries(baseline.reads)) expect(read.status, path).toBe(200);
}, 30_000);

afterAll(async () => {
  // A's pending message, schedule, queue and group are removed, so nothing fires after the run.
  for (const path of ["/v2/messages", `/v2/schedules/${ids.schedule}`, `/v2/queues/${ids.queue}`, `/v2/topics/${ids.group}`]) {
    expect((await api(path, { method: "DELETE", token: a.token })).status, `cleanup DELETE ${path}`).toBe(200);
  }
});

describe("authorization matrix: coverage", () => {
  it("has a row for every /v2 route the app registers", () => {
    // The app's own route table (catch-all 405/404 handlers and the auth middleware are registered as ALL).
    const routes = buildApp().routes.filter((r) => r.path.startsWith("/v2/") && r.method !== "ALL");
    expect(routes.length).toBeGreaterThan(40);
    const rows = ENDPOINTS.map((e) => ({ method: e.method, path: e.path.split("?")[0].replace(/\{\w+\}/g, "x") }));
    for (const r of routes) {
      const pattern = new RegExp(`^${r.path.replace(/[.]/g, "\\.").replace(/:\w+/g, "[^/]+").replace(/\*/g, ".+")}$`);
      const covered = rows.some((row) => row.method === r.method && pattern.test(row.path));
      expect(covered, `no matrix row for ${r.method} ${r.path}`).toBe(true);
    }
  });
});

describe("authorization matrix: no token", () => {
  for (const e of ENDPOINTS) {
    it(`401 for ${label(e)}`, async () => {
      const res = await call(e, null);
      const text = await readChecked(res, label(e));
      expect(res.status, label(e)).toBe(401);
      expect(res.headers.get("content-type") ?? "").toContain("application/json");
      expect(JSON.parse(text)).toEqual({ error: "Unauthorized" });
    });
  }
});

describe("authorization matrix: wrong token", () => {
  for (const e of ENDPOINTS) {
    it(`401 for ${label(e)} (header, bare header and ?qstash_token=)`, async () => {
      const attempts: Response[] = [
        await call(e, WRONG_TOKEN),
        // A token one character off from a real one.
        await call(e, `${a.token.slice(0, -1)}${a.token.endsWith("x") ? "y" : "x"}`),
        await api(fill(e.path, ids), {
          method: e.method,
          token: null,
          headers: { ...fillHeaders(e.headers, ids), authorization: WRONG_TOKEN },
          body: e.body?.(ids),
        }),
        await call(e, null, `qstash_token=${WRONG_TOKEN}`),
      ];
      for (const res of attempts) {
        const text = await readChecked(res, label(e));
        expect(res.status, label(e)).toBe(401);
        expect(res.headers.get("content-type") ?? "").toContain("application/json");
        expect(JSON.parse(text)).toEqual({ error: "Unauthorized" });
      }
    });
  }
});

/** B's reads first, then bulk calls, then the calls that create things in B's namespace (cleaned up after). */
const ORDER: Record<Kind, number> = { list: 0, single: 1, idempotent: 1, batch: 2, bulk: 3, own: 4, create: 5 };

describe("authorization matrix: tenant B's token", () => {
  const sorted = [...ENDPOINTS].sort((x, y) => ORDER[x.kind] - ORDER[y.kind]);
  for (const e of sorted) {
    it(`${label(e)} does not reach tenant A (${e.kind})`, async () => {
      const res = await call(e, b.token);
      const text = await readChecked(res, label(e));
      expect(res.status, `${label(e)}: never a 5xx`).toBeLessThan(500);
      const ok = res.status >= 200 && res.status < 300;
      if (e.kind === "single") {
        expect(ok, `${label(e)} answered ${res.status}: ${text}`).toBe(false);
        expect(e.statusForB ?? [404], `${label(e)}: ${text}`).toContain(res.status);
        expectJsonError(res, text, label(e));
      } else if (e.kind === "idempotent") {
        expect(res.status, `${label(e)}: ${text}`).toBe(200);
        for (const s of secretsOfA()) expect(text.includes(s), `${label(e)} leaks ${s}`).toBe(false);
      } else if (e.kind === "list") {
        expect(ok, `${label(e)} answered ${res.status}: ${text}`).toBe(true);
        for (const s of secretsOfA()) expect(text.includes(s), `${label(e)} leaks ${s}`).toBe(false);
      } else if (e.kind === "bulk") {
        expect(ok, `${label(e)} answered ${res.status}: ${text}`).toBe(true);
        const body = JSON.parse(text) as { cancelled?: number; deleted?: number; responses?: unknown[] };
        if (body.cancelled !== undefined) expect(body.cancelled).toBe(0);
        if (body.deleted !== undefined) expect(body.deleted).toBe(0);
        if (body.responses !== undefined) expect(body.responses).toEqual([]);
        for (const s of secretsOfA()) expect(text.includes(s), `${label(e)} leaks ${s}`).toBe(false);
      } else if (e.kind === "batch") {
        expect(res.status, text).toBe(200);
        const body = JSON.parse(text) as { error?: unknown }[];
        expect(body.length).toBe(1);
        expect(typeof body[0].error, `the entry aimed at A's group must fail: ${text}`).toBe("string");
      } else {
        // create / own: B acts inside its own namespace; the answer names nothing that A's server state generated.
        expect(ok, `${label(e)} answered ${res.status}: ${text}`).toBe(true);
        for (const s of generatedIdsOfA()) expect(text.includes(s), `${label(e)} leaks ${s}`).toBe(false);
        for (const [method, path] of e.cleanup?.(ids) ?? []) {
          const done = await api(path, { method, token: b.token });
          expect(done.status, `cleanup ${method} ${path}`).toBe(200);
        }
      }
      expect(await snapshot(), `A's data after B's ${label(e)}`).toEqual(baseline);
    });
  }

  it("B's resource lists still mention nothing of A after B used A's names for its own resources", async () => {
    // Logs are left out: B's own (cancelled) messages legitimately carry the names B chose, such as A's queue name.
    const lists = ENDPOINTS.filter((x) => x.kind === "list" && !/\/v2\/(logs|events)/.test(x.path));
    expect(lists.length).toBeGreaterThan(5);
    for (const e of lists) {
      const text = await (await call(e, b.token)).text();
      for (const s of secretsOfA()) expect(text.includes(s), `${label(e)} leaks ${s}`).toBe(false);
    }
  });
});

describe("authorization matrix: tenant A's read-only token", () => {
  for (const e of ENDPOINTS) {
    const reading = e.method === "GET";
    it(`${label(e)} ${reading ? "is readable" : "is refused with 403"}`, async () => {
      const res = await call(e, a.readOnlyToken);
      const text = await readChecked(res, label(e));
      if (reading) {
        expect(res.status, `${label(e)}: ${text}`).toBeGreaterThanOrEqual(200);
        expect(res.status, `${label(e)}: ${text}`).toBeLessThan(300);
      } else {
        expect(res.status, `${label(e)}: ${text}`).toBe(403);
        expect(expectJsonError(res, text, label(e)).error.length).toBeGreaterThan(0);
      }
      expect(await snapshot(), `A's data after the read-only ${label(e)}`).toEqual(baseline);
    });
  }

  it("single-resource reads with the read-only token return A's own resources", async () => {
    for (const e of ENDPOINTS.filter((x) => x.method === "GET" && x.kind === "single" && !x.unnamed)) {
      const res = await call(e, a.readOnlyToken);
      const text = await res.text();
      expect(res.status, label(e)).toBe(200);
      // Each single read names the resource it was asked for.
      const wanted = fill(e.path, ids).split("/").pop() ?? "";
      expect(text, label(e)).toContain(wanted);
    }
  });
});

describe("token storage", () => {
  it("no table holds a plaintext token, and tokens holds the SHA-256 of each", async () => {
    const t = await freshTenant();
    // Use both tokens once so that any request-side storage (logs, headers) would have had a chance to keep them.
    expect((await api("/v2/keys", { token: t.token })).status).toBe(200);
    expect((await api("/v2/keys", { token: t.readOnlyToken })).status).toBe(200);
    await publishOk(dest(`${uniqueKey("tok")}/ok`), { token: t.token, headers: { "upstash-delay": "1h" } });

    const { results: rows } = await env.DB.prepare("SELECT * FROM tokens").all<Record<string, unknown>>();
    const dump = JSON.stringify(rows);
    expect(rows.filter((r) => r.tenant_id === t.tenantId).length).toBe(2);
    expect(dump.includes(t.token)).toBe(false);
    expect(dump.includes(t.readOnlyToken)).toBe(false);
    const hashes = new Set(rows.map((r) => r.token_hash));
    for (const token of [t.token, t.readOnlyToken]) {
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));
      const hex = [...digest].map((x) => x.toString(16).padStart(2, "0")).join("");
      expect(hashes.has(hex)).toBe(true);
    }

    // Every text-like column of every table of the app, searched for either token.
    const { results: columns } = await env.DB.prepare(
      `SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p
       WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_cf_%' AND m.name NOT LIKE 'd1_%'`,
    ).all<{ t: string; c: string }>();
    expect(columns.some((col) => col.t === "messages")).toBe(true);
    for (const { t: table, c: column } of columns) {
      for (const token of [t.token, t.readOnlyToken]) {
        const n = await env.DB.prepare(`SELECT count(*) AS n FROM "${table}" WHERE instr(CAST("${column}" AS TEXT), ?1) > 0`)
          .bind(token)
          .first<number>("n");
        expect(Number(n), `${table}.${column} holds a token`).toBe(0);
      }
    }
  });
});
