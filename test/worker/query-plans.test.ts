/**
 * Query plans of the sweeper, the API calls clients make and the consumer: they run against a messages table of
 * millions of rows, so none of their statements may scan it (nor the DLQ or the log marks). SQLite plans a
 * statement the same way on an empty table as on a large one when no statistics are kept (D1 keeps none), so the
 * plans are checked here, on the test database. Scans of `messages_watch` are allowed: that partial index holds
 * only unfinished work off the common path, not the history that grows with traffic (bulk cancel and
 * GET /v2/globalParallelism walk it on purpose; docs/storage.md).
 *
 * The reproduction: pruning's statement for messages stored before migration 0011 joined `legacy_messages` to
 * `messages` and SQLite chose to scan `messages` first: 600 ms on a million rows at the start of every sweep,
 * during which every publish waited (bench/prune.mjs --server lean, publish p99 5.6× the empty state's).
 */
import { createExecutionContext, createMessageBatch, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { shardEnv } from "../../src/db/shards";
import { consumeBatch } from "../../src/delivery/consumer";
import { sweep } from "../../src/delivery/sweeper";
import type { DeliveryTask, Env } from "../../src/env";
import worker from "../../src/index";
import { api, BASE, dest, dueButUnsent, failInto, freshTenant, publish, uniqueKey, waitForHits } from "./helpers";

type Recorded = { sql: string; params: unknown[] };

/** A D1 database that notes every statement prepared on it, with the values bound to it. */
function recording(db: D1Database, into: Recorded[]): D1Database {
  return new Proxy(db, {
    get(target, prop) {
      if (prop === "prepare") {
        return (sql: string) => {
          const entry: Recorded = { sql, params: [] };
          into.push(entry);
          const stmt = target.prepare(sql);
          return new Proxy(stmt, {
            get(s, p) {
              if (p === "bind") {
                return (...params: unknown[]) => {
                  entry.params = params;
                  return s.bind(...params);
                };
              }
              const v = Reflect.get(s, p, s);
              return typeof v === "function" ? v.bind(s) : v;
            },
          });
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** `base` with every D1 database it binds (the primary and each shard) recording into `seen`. */
function recordingEnv(base: Env, seen: Recorded[]): Env {
  const rec = { ...base, DB: recording(base.DB, seen) } as Env & Record<string, unknown>;
  for (const [k, v] of Object.entries(base)) if (/^DB_SHARD_\d+$/.test(k)) rec[k] = recording(v as D1Database, seen);
  return rec;
}

/**
 * The plan lines of the recorded statements that scan messages, DLQ entries or log marks (by table name or by the
 * alias the statements give it), each with its statement. A SCAN of a subquery's result (a CO-ROUTINE or
 * MATERIALIZE of that name) reads no table.
 */
async function scansIn(db: D1Database, seen: Recorded[]): Promise<string[]> {
  const names = new Set(["messages", "m", "dlq", "d", "log_marks", "lm", "k"]);
  const out = new Set<string>();
  for (const r of seen) {
    const { results } = await db.prepare(`EXPLAIN QUERY PLAN ${r.sql}`).bind(...r.params).all<{ detail: string }>();
    const lines = results.map((row) => row.detail);
    const subqueries = new Set(lines.flatMap((d) => /^(?:CO-ROUTINE|MATERIALIZE) (\S+)/.exec(d)?.[1] ?? []));
    for (const d of lines) {
      const name = /^SCAN (\S+)/.exec(d)?.[1];
      if (name === undefined || !names.has(name) || subqueries.has(name) || /USING (COVERING )?INDEX messages_watch\b/.test(d)) continue;
      out.add(`${d} in: ${r.sql.replace(/\s+/g, " ").slice(0, 200)}`);
    }
  }
  return [...out];
}

describe("query plans", () => {
  it("no statement of a sweep plans a scan of messages, DLQ entries or log marks", async () => {
    // Something for each step to find: a failed message (DLQ), a held one in a queue, a pending one.
    const t = await freshTenant();
    await failInto(t.token, 1, uniqueKey("plans"));
    const q = uniqueKey("plans");
    await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: q, paused: true }) });
    expect((await api(`/v2/enqueue/${q}/${dest("plans/held")}`, { method: "POST", token: t.token, body: "x" })).status).toBe(200);
    expect((await publish(dest("plans/later"), { token: t.token, body: "x", headers: { "Upstash-Delay": "1h" } })).status).toBe(200);

    const base = shardEnv(env as Env, t.shard);
    const seen: Recorded[] = [];
    await sweep({ ...base, DB: recording(base.DB, seen) }, Date.now() + 31 * 86_400_000, { rewalk: true, pruneBudgetMs: 2_000 });
    expect(seen.length).toBeGreaterThan(10);
    expect(seen.some((r) => r.sql.includes("legacy_messages"))).toBe(true);

    expect(await scansIn(base.DB, seen)).toEqual([]);
  });

  it("no API call a client makes plans a scan of messages, DLQ entries or log marks", async () => {
    const t = await freshTenant();
    const seen: Recorded[] = [];
    const base = env as Env;
    const rec = recordingEnv(base, seen);
    const call = async (method: string, path: string, body?: string, headers: Record<string, string> = {}) => {
      const ctx = createExecutionContext();
      const res = await worker.fetch(
        new Request(`${BASE}${path}`, { method, body, headers: { authorization: `Bearer ${t.token}`, ...headers } }) as Request<unknown, IncomingRequestCfProperties>,
        rec,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      expect(res.status, `${method} ${path}: ${await res.clone().text()}`).toBeLessThan(300);
      return res;
    };
    const label = uniqueKey("plans");
    await failInto(t.token, 1, label);
    const id = ((await (await call("POST", `/v2/publish/${dest("plans/a")}`, "x", { "upstash-delay": "1h", "upstash-label": label })).json()) as { messageId: string }).messageId;
    await call("POST", `/v2/publish/${dest("plans/b")}`, "x", { "upstash-callback": dest("plans/cb") });
    await call("POST", "/v2/batch", JSON.stringify([{ destination: dest("plans/c"), body: "1" }, { destination: dest("plans/d"), body: "2" }]));
    const q = uniqueKey("plans");
    await call("POST", `/v2/enqueue/${q}/${dest("plans/e")}`, "x");
    await call("GET", `/v2/messages/${id}`);
    await call("GET", "/v2/logs");
    await call("GET", `/v2/logs?messageId=${id}`);
    await call("GET", "/v2/logs?state=FAILED");
    await call("GET", `/v2/logs?label=${label}`);
    await call("GET", `/v2/logs?url=${encodeURIComponent(dest("plans/a"))}`);
    await call("GET", "/v2/events");
    await call("GET", "/v2/dlq");
    await call("GET", `/v2/dlq?label=${label}`);
    await call("DELETE", `/v2/messages/${id}`);
    await call("DELETE", "/v2/messages", JSON.stringify({ label }), { "content-type": "application/json" });
    await call("DELETE", "/v2/messages");
    await call("GET", "/v2/queues");
    await call("DELETE", `/v2/queues/${q}`);
    await call("GET", "/v2/schedules");
    await call("GET", "/v2/topics");
    await call("GET", "/v2/globalParallelism");
    expect(seen.length).toBeGreaterThan(20);

    expect(await scansIn(shardEnv(base, t.shard).DB, seen)).toEqual([]);
  });

  it("no statement of the consumer (claim, outcomes, retries, callbacks, the DLQ) plans a scan", async () => {
    const key = uniqueKey("plans-q");
    const ids = [
      await dueButUnsent(dest(`${key}-ok/ok`), { headers: { "upstash-callback": dest(`${key}-cb/ok`) } }),
      await dueButUnsent(dest(`${key}-retry/status/500`), { headers: { "upstash-retries": "1", "upstash-retry-delay": "60000" } }),
      await dueButUnsent(dest(`${key}-dlq/status/500`), { headers: { "upstash-retries": "0", "upstash-failure-callback": dest(`${key}-fcb/ok`) } }),
    ];
    const seen: Recorded[] = [];
    const rec = { ...recordingEnv(env as Env, seen), DETACHED_ATTEMPTS: "false" } as Env;
    await consumeBatch(createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: key, timestamp: new Date(), attempts: 1, body: { ids } }]), rec);
    // The callback and the failure callback run in the same invocation or are handed on; their hits say they went.
    await waitForHits(`${key}-cb`, 1);
    await waitForHits(`${key}-fcb`, 1);
    expect(seen.length).toBeGreaterThan(3);

    expect(await scansIn((env as Env).DB, seen)).toEqual([]);
  });
});
