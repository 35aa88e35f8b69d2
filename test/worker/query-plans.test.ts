/**
 * Query plans of the sweeper: it runs every minute against a messages table of millions of rows, so none of its
 * statements may scan that table. SQLite plans a statement the same way on an empty table as on a large one when
 * no statistics are kept (D1 keeps none), so the plans are checked here, on the test database.
 *
 * The reproduction: pruning's statement for messages stored before migration 0011 joined `legacy_messages` to
 * `messages` and SQLite chose to scan `messages` first: 600 ms on a million rows at the start of every sweep,
 * during which every publish waited (bench/prune.mjs --server lean, publish p99 5.6× the empty state's).
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { shardEnv } from "../../src/db/shards";
import { sweep } from "../../src/delivery/sweeper";
import type { Env } from "../../src/env";
import { api, dest, failInto, freshTenant, publish, uniqueKey } from "./helpers";

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

/**
 * Plan lines that read a whole table of messages (a SCAN, with or without an index). `m` is how the statements
 * name messages; a SCAN of a subquery's result (a CO-ROUTINE or MATERIALIZE of that name) reads no table.
 */
async function scansOfMessages(db: D1Database, r: Recorded): Promise<string[]> {
  const { results } = await db.prepare(`EXPLAIN QUERY PLAN ${r.sql}`).bind(...r.params).all<{ detail: string }>();
  const lines = results.map((row) => row.detail);
  const subqueries = new Set(lines.flatMap((d) => /^(?:CO-ROUTINE|MATERIALIZE) (\S+)/.exec(d)?.[1] ?? []));
  return lines.filter((d) => {
    const name = /^SCAN (\S+)/.exec(d)?.[1];
    return (name === "messages" || name === "m") && !subqueries.has(name);
  });
}

describe("query plans", () => {
  it("no statement of a sweep scans the messages table", async () => {
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

    const scans: string[] = [];
    for (const r of seen) {
      for (const line of await scansOfMessages(base.DB, r)) scans.push(`${line} in: ${r.sql.replace(/\s+/g, " ").slice(0, 160)}`);
    }
    expect(scans).toEqual([]);
  });
});
