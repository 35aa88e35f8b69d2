/** Helpers for worker tests: API calls through the worker, and the real destination's record of hits. */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import worker from "../../src/index";
import { inject } from "vitest";
import { createTenant } from "../../src/db/tenants";
import { shardEnv } from "../../src/db/shards";
import type { DeliveryTask, Env } from "../../src/env";
import type { MessageSpec } from "../../src/core/spec";

export const DEV_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=";
export const BASE = "http://boomerang.test";

export function dest(path: string): string {
  return `http://127.0.0.1:${inject("destinationPort")}/${path}`;
}

export function refusedUrl(path = "x"): string {
  return `http://127.0.0.1:${inject("closedPort")}/${path}`;
}

export function uniqueKey(prefix = "k"): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * `token`: the bearer token (default the dev token; null sends none). `settle`: also wait for the work the
 * request left running (waitUntil) before answering, so that no later test sees its leftovers. `vars`: settings
 * over the test environment's, for this request only.
 */
export type ApiInit = RequestInit & { token?: string | null; settle?: boolean; vars?: Record<string, string> };

export async function api(path: string, init: ApiInit = {}): Promise<Response> {
  const { token: given, settle, vars, ...rest } = init;
  const headers = new Headers(rest.headers);
  const token = given === undefined ? DEV_TOKEN : given;
  if (token !== null && !headers.has("authorization")) headers.set("authorization", `Bearer ${token}`);
  // The worker's fetch handler called directly: SELF.fetch slows down with every request in one workerd
  // (cloudflare/workers-sdk#15446), and the handler is the same code.
  const request = new Request(`${BASE}${path}`, { ...rest, headers }) as Request<unknown, IncomingRequestCfProperties>;
  const ctx = createExecutionContext();
  const res = await worker.fetch(request, vars ? { ...env, ...vars } : env, ctx);
  if (settle) await waitOnExecutionContext(ctx);
  return res;
}

export async function publish(destination: string, init: ApiInit = {}): Promise<Response> {
  return api(`/v2/publish/${destination}`, { method: "POST", ...init });
}

export async function publishOk(destination: string, init: ApiInit = {}): Promise<string> {
  const res = await publish(destination, init);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`publish answered ${res.status}: ${text}`);
  return (JSON.parse(text) as { messageId: string }).messageId;
}

export interface Hit {
  key: string;
  method: string;
  path: string;
  url: string;
  headers: Record<string, string>;
  /** Base64; empty for a body over 32 MiB (see size and sha256). */
  body: string;
  size: number;
  sha256: string;
  time: number;
  /** When the destination answered (absent while it has not). */
  endTime?: number;
}

export async function hits(key: string): Promise<Hit[]> {
  const res = await fetch(`http://127.0.0.1:${inject("destinationPort")}/__hits/${key}`);
  return res.json();
}

/** Polls until `check` returns a value (not undefined / false), or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function waitForHits(key: string, n: number, timeoutMs = 10_000): Promise<Hit[]> {
  return waitFor(`${n} hit(s) on ${key}`, async () => {
    const h = await hits(key);
    return h.length >= n ? h : undefined;
  }, timeoutMs);
}

/** States logged for a message, oldest first (every page: a page of large bodies ends early, with a cursor). */
export async function states(messageId: string, token = DEV_TOKEN): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const res = await api(`/v2/logs?messageId=${messageId}&order=asc${cursor ? `&cursor=${cursor}` : ""}`, { token });
    const body = await res.json<{ logs: { state: string }[]; cursor?: string }>();
    out.push(...body.logs.map((l) => l.state));
    cursor = body.cursor;
  } while (cursor);
  return out;
}

export async function waitForState(messageId: string, state: string, timeoutMs = 10_000, token = DEV_TOKEN): Promise<string[]> {
  return waitFor(`${messageId} to reach ${state}`, async () => {
    const s = await states(messageId, token);
    return s.includes(state) ? s : undefined;
  }, timeoutMs);
}

/** A fresh tenant of its own (for isolation tests), in the shard with the fewest tenants unless `shard` is given. */
export async function freshTenant(shard?: number) {
  return createTenant(env as Env, "test", Date.now(), shard);
}

/** The D1 database that holds a tenant's data (its shard). */
export function dbOf(t: { shard: number }): D1Database {
  return shardEnv(env as Env, t.shard).DB;
}

export type Dlq = { messages: Record<string, unknown>[]; cursor?: string };

/** Publishes `n` messages that fail at once (no retries) with `label`, and waits until all are in the DLQ. */
export async function failInto(token: string, n: number, label: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(await publishOk(dest(`${label}/status/500`), { token, headers: { "upstash-retries": "0", "upstash-label": label } }));
  }
  await waitFor("DLQ entries", async () => {
    const body = await (await api(`/v2/dlq?label=${label}`, { token })).json<Dlq>();
    return body.messages.length === n ? true : undefined;
  });
  return ids;
}

/** A deliveries queue that fails every send (an outage of the queue service), to inject where a binding is used. */
export const failingQueue = {
  send: async () => {
    throw new Error("queue unavailable (injected)");
  },
  sendBatch: async () => {
    throw new Error("queue unavailable (injected)");
  },
} as unknown as Queue<DeliveryTask>;

/** Makes stored messages due a second ago (a delayed message the queue has not seen yet, for a hand-made task). */
export async function makeDue(db: D1Database, ids: string[]): Promise<void> {
  await db
    .prepare("UPDATE messages SET due_at = ?2, not_before = 0 WHERE id IN (SELECT value FROM json_each(?1))")
    .bind(JSON.stringify(ids), Date.now() - 1000)
    .run();
}

/**
 * A stored message the queue has not seen yet: published delayed an hour (by `tenant`, default the dev tenant, with
 * `headers` too), then made due a second ago, for a test that hands the consumer its task itself.
 */
export async function dueButUnsent(
  url: string,
  opts: { tenant?: { token: string; shard: number }; headers?: Record<string, string> } = {},
): Promise<string> {
  const id = await publishOk(url, { token: opts.tenant?.token, headers: { "upstash-delay": "1h", ...opts.headers } });
  await makeDue(opts.tenant ? dbOf(opts.tenant) : (env as Env).DB, [id]);
  return id;
}

/** A publish with no options: POST, no retries, no delay, no callbacks (tests that build messages themselves). */
export const plainSpec: MessageSpec = {
  method: "POST",
  headers: {},
  maxRetries: 0,
  retryDelayExpr: null,
  timeoutMs: null,
  notBefore: 0,
  callback: null,
  failureCallback: null,
  callbackConfig: null,
  failureCallbackConfig: null,
  labels: [],
  flowControl: null,
  redact: null,
  deduplicationId: null,
  contentBasedDeduplication: false,
};

/** `fetcher` behind a binding that counts the requests passing through it. */
export function counting(fetcher: Fetcher): { binding: Fetcher; requests: () => number } {
  let n = 0;
  const binding = {
    fetch: (input: RequestInfo | URL, init?: RequestInit) => {
      n++;
      return fetcher.fetch(input, init);
    },
  } as Fetcher;
  return { binding, requests: () => n };
}
