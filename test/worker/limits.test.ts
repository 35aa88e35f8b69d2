/**
 * The largest things a client can ask for, through the real local D1: a URL group of 1,000 endpoints and a publish
 * to it, a batch of 1,000 entries, cancelling 100,000 pending messages, deleting a queue with 100,000 waiting.
 * Each must succeed, and the requests that write many rows must do it in a bounded number of D1 statements
 * (D1 allows 1,000 queries per invocation; the counts here are what the request's own code sent to D1).
 */
import { idFloor } from "../../src/core/ids";
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import type { Env } from "../../src/env";
import { gateName, gateStub } from "../../src/objects/gate";
import { BASE, api, dbOf, dest, freshTenant, uniqueKey } from "./helpers";

/** The worker's env with D1 bindings (both shards) that count the statements they run (each passed to the real D1). */
function countingEnv(): { env: Env; statements: () => number } {
  let count = 0;
  const wrap = (stmt: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(stmt, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop === "bind") return (...args: unknown[]) => wrap((value as (...a: unknown[]) => D1PreparedStatement).apply(target, args));
        if (prop === "first" || prop === "run" || prop === "all" || prop === "raw") {
          return (...args: unknown[]) => {
            count += 1;
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const counted = (real: D1Database) => new Proxy(real, {
    get(target, prop) {
      if (prop === "prepare") return (sql: string) => wrap(target.prepare(sql));
      if (prop === "batch") {
        return (stmts: D1PreparedStatement[]) => {
          count += stmts.length;
          return target.batch(stmts);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { env: { ...(env as Env), DB: counted(env.DB), DB_SHARD_1: counted(env.DB_SHARD_1) } as Env, statements: () => count };
}

async function call(e: Env, path: string, init: RequestInit & { token: string }): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${init.token}`);
  const ctx = createExecutionContext();
  const res = await worker.fetch(new Request(`${BASE}${path}`, { ...init, headers }) as Request<unknown, IncomingRequestCfProperties>, e, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

/** Inserts `n` pending message rows of a tenant straight into D1 (setup for the bulk cases). */
async function fabricatePending(
  t: { tenantId: string; shard: number },
  n: number,
  opts: { queue?: string; held?: boolean } = {},
): Promise<string> {
  // Ids that carry their time and name the tenant's shard, like real ones (msg_<time><n>_… outside shard 0).
  const now = Date.now();
  const prefix = idFloor(now) + (t.shard === 0 ? "" : `${t.shard}_`) + uniqueKey("fab").replace(/-/g, "");
  const tenantId = t.tenantId;
  await dbOf(t).prepare(
    `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1)
     INSERT INTO messages (id, tenant_id, kind, url, method, headers, max_retries, not_before, created_at, state, due_at,
       queue_name, held, anchor_at, watch, log)
     SELECT ?2 || '-' || i, ?3, 'message', ?4, 'POST', '{}', 0, 0, ?5, 'CREATED', ?5 + 3600000, ?6, ?7, ?5, 1,
       json_array(json_object('t', ?5, 'a', ?5, 's', 'CREATED', 'n', ?5 + 3600000)) FROM k`,
  )
    .bind(n, prefix, tenantId, dest("fab/ok"), now, opts.queue ?? null, opts.held ? 1 : 0)
    .run();
  return prefix;
}

async function countWhere(t: { shard: number }, sql: string, ...params: unknown[]): Promise<number> {
  return Number(await dbOf(t).prepare(`SELECT count(*) AS n FROM messages WHERE ${sql}`).bind(...params).first("n"));
}

describe("the largest requests", () => {
  it("a URL group of 1,000 endpoints, and a publish to it, in as many statements as with 10", async () => {
    const t = await freshTenant();
    /** Statements to create a group of n endpoints and to publish to it. */
    const measure = async (n: number) => {
      const group = uniqueKey(`g${n}`);
      const endpoints = Array.from({ length: n }, (_, i) => ({ url: dest(`${group}/e${i}`), name: `e${i}` }));
      const add = countingEnv();
      const res = await call(add.env, `/v2/topics/${group}/endpoints`, {
        method: "POST",
        token: t.token,
        body: JSON.stringify({ endpoints }),
        headers: { "content-type": "application/json" },
      });
      expect(res.status).toBe(200);
      const pub = countingEnv();
      const published = await call(pub.env, `/v2/publish/${group}`, { method: "POST", token: t.token, body: "x", headers: { "upstash-delay": "1h" } });
      expect(published.status).toBe(200);
      expect(((await published.json()) as unknown[]).length).toBe(n);
      return { group, add: add.statements(), publish: pub.statements() };
    };
    const small = await measure(10);
    const large = await measure(1000);
    // 1,000 endpoints go in as a few JSON chunks: a handful of statements more than 10 endpoints, never 1,000. The
    // messages of a publish go in 100 rows a statement (one bound parameter each, D1's limit), so 9 more.
    expect(large.add - small.add).toBeLessThanOrEqual(4);
    expect(large.publish - small.publish).toBeLessThanOrEqual(1000 / 100 - 1 + 2);
    expect(large.add + large.publish).toBeLessThan(100);
    const g = await (await api(`/v2/topics/${large.group}`, { token: t.token })).json<{ endpoints: unknown[] }>();
    expect(g.endpoints.length).toBe(1000);
    expect(await countWhere(t, "tenant_id = ?1 AND topic_name = ?2 AND finished_at IS NULL", t.tenantId, large.group)).toBe(1000);
    const events = await dbOf(t).prepare(
      "SELECT count(*) AS n FROM messages m, json_each(m.log) e WHERE m.tenant_id = ?1 AND m.topic_name = ?2 AND e.value ->> '$.s' = 'CREATED'",
    )
      .bind(t.tenantId, large.group)
      .first("n");
    expect(Number(events)).toBe(1000);
  }, 60_000);

  it("a batch of 1,000 entries in a bounded number of statements", async () => {
    const t = await freshTenant();
    const key = uniqueKey("b1000");
    const entries = Array.from({ length: 1000 }, (_, i) => ({ destination: dest(`${key}/m${i}`), body: `entry ${i}`, headers: { "Upstash-Delay": "1h" } }));
    const b = countingEnv();
    const res = await call(b.env, `/v2/batch`, { method: "POST", token: t.token, body: JSON.stringify(entries), headers: { "content-type": "application/json" } });
    expect(res.status).toBe(200);
    const out = await res.json<{ messageId?: string; error?: string }[]>();
    expect(out.length).toBe(1000);
    expect(out.every((o) => typeof o.messageId === "string")).toBe(true);
    expect(b.statements()).toBeLessThanOrEqual(100);
    expect(await countWhere(t, "tenant_id = ?1 AND finished_at IS NULL", t.tenantId)).toBe(1000);
  }, 60_000);

  it("DELETE /v2/messages cancels 100,000 pending messages, 500 per call", async () => {
    const t = await freshTenant();
    await fabricatePending(t, 100_000);
    let total = 0;
    for (let calls = 0; calls < 250; calls++) {
      const res = await api(`/v2/messages?count=500`, { method: "DELETE", token: t.token });
      expect(res.status).toBe(200);
      const { cancelled } = await res.json<{ cancelled: number }>();
      if (cancelled === 0) break;
      total += cancelled;
    }
    expect(total).toBe(100_000);
    expect(await countWhere(t, "tenant_id = ?1 AND state = 'CANCELED'", t.tenantId)).toBe(100_000);
  }, 300_000);

  it("deleting a queue with 100,000 waiting cancels all of them", async () => {
    const t = await freshTenant();
    const queue = uniqueKey("q100k");
    expect((await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: queue, paused: true }), headers: { "content-type": "application/json" } })).status).toBe(200);
    const prefix = await fabricatePending(t, 100_000, { queue, held: true });
    const gate = gateStub(env, gateName("queue", t.tenantId, queue));
    await gate.configure({ paused: true });
    for (let start = 1; start <= 100_000; start += 5_000) {
      await gate.add(Array.from({ length: 5_000 }, (_, i) => ({ id: `${prefix}-${start + i}`, dueAt: 0 })));
    }
    expect((await gate.info()).waiting).toBe(100_000);
    const res = await api(`/v2/queues/${queue}`, { method: "DELETE", token: t.token });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await countWhere(t, "tenant_id = ?1 AND queue_name = ?2 AND state = 'CANCELED'", t.tenantId, queue)).toBe(100_000);
  }, 300_000);
});
