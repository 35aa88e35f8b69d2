/**
 * Retention: one sweep prunes in bounded steps until nothing expired is left (or its time budget is spent);
 * finished messages go after LOG_RETENTION, and a failed message stays while its DLQ entry does.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { idFloor } from "../../src/core/ids";
import { shardEnv } from "../../src/db/shards";
import { sweep, sweepAll } from "../../src/delivery/sweeper";
import type { Env } from "../../src/env";
import { api, dbOf, dest, failInto, freshTenant, uniqueKey } from "./helpers";

const DAY = 86_400_000;

/**
 * `n` finished messages of a tenant with 3 log entries each, created and finished `ageMs` ago (setup straight into
 * D1; their ids carry that time, as real ids do). One of each 100 delivered late has a log mark too.
 */
async function fabricateFinished(tenant: { tenantId: string; shard: number }, n: number, ageMs: number): Promise<string> {
  const t = Date.now() - ageMs;
  const prefix = idFloor(t) + uniqueKey("old").replace(/-/g, "");
  const tenantId = tenant.tenantId;
  const db = dbOf(tenant);
  await db.prepare(
    `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1)
     INSERT INTO messages (id, tenant_id, kind, url, method, headers, max_retries, not_before, created_at, state, due_at, finished_at,
       anchor_at, log)
     SELECT ?2 || '-' || i, ?3, 'message', ?4, 'POST', '{}', 0, 0, ?5, 'DELIVERED', ?5, ?5 + 60000 * (i % 100 = 0),
       ?5 + 60000 * (i % 100 = 0),
       json_array(json_object('t', ?5, 'a', ?5, 's', 'CREATED'), json_object('t', ?5, 'a', ?5, 's', 'ACTIVE'),
         json_object('t', ?5 + 60000 * (i % 100 = 0), 'a', ?5 + 60000 * (i % 100 = 0), 's', 'DELIVERED'))
     FROM k`,
  ).bind(n, prefix, tenantId, dest("old/ok"), t).run();
  await db.prepare(
    `INSERT INTO log_marks (tenant_id, time, message_id) SELECT tenant_id, anchor_at, id FROM messages
     WHERE id LIKE ?1 || '-%' AND anchor_at > created_at`,
  ).bind(prefix).run();
  return prefix;
}

/** A count over the tenant's shard. */
const countIn = async (t: { shard: number }, sql: string, ...params: unknown[]) => Number(await dbOf(t).prepare(sql).bind(...params).first("n"));

describe("retention", () => {
  it("one sweep prunes an expired backlog larger than one step, and keeps what has not expired", async () => {
    const t = await freshTenant();
    const old = await fabricateFinished(t, 2_500, 20 * DAY);
    const recent = await fabricateFinished(t, 10, 1 * DAY);
    expect(await countIn(t, "SELECT count(*) AS n FROM log_marks WHERE message_id LIKE ?1 || '-%'", old)).toBe(25);
    await sweepAll(env, Date.now(), { rewalk: true });
    expect(await countIn(t, "SELECT count(*) AS n FROM messages WHERE id LIKE ?1 || '-%'", old)).toBe(0);
    expect(await countIn(t, "SELECT count(*) AS n FROM log_marks WHERE message_id LIKE ?1 || '-%'", old)).toBe(0);
    expect(await countIn(t, "SELECT count(*) AS n FROM messages WHERE id LIKE ?1 || '-%'", recent)).toBe(10);
  });

  it("a failing sweep step does not stop the others: with every gate unreachable, pruning still runs", async () => {
    const t = await freshTenant();
    const old = await fabricateFinished(t, 50, 20 * DAY);
    // A held message past due makes the held-work step call its gate, which fails here.
    const q = uniqueKey("iso");
    await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: q, paused: true }) });
    expect((await api(`/v2/enqueue/${q}/${dest(`${uniqueKey("iso")}/ok`)}`, { method: "POST", token: t.token })).status).toBe(200);
    await dbOf(t).prepare("UPDATE messages SET due_at = ?2 WHERE tenant_id = ?1 AND held = 1").bind(t.tenantId, Date.now() - 60_000).run();
    const gatesDown = {
      ...(env as Env),
      GATE: {
        idFromName: () => {
          throw new Error("gates unavailable (injected)");
        },
      } as unknown as Env["GATE"],
    };
    await sweep(shardEnv(gatesDown, t.shard), Date.now(), { rewalk: true });
    expect(await countIn(t, "SELECT count(*) AS n FROM messages WHERE id LIKE ?1 || '-%'", old)).toBe(0);
  });

  it("a sweep with no time budget left stops after one step", async () => {
    const t = await freshTenant();
    const old = await fabricateFinished(t, 2_500, 20 * DAY);
    await sweepAll(env, Date.now(), { pruneBudgetMs: 0, rewalk: true });
    // Other test files may sweep at the same time: at least one step is done, never more than what expired.
    expect(await countIn(t, "SELECT count(*) AS n FROM messages WHERE id LIKE ?1 || '-%'", old)).toBeLessThanOrEqual(1_500);
    await sweepAll(env, Date.now(), { rewalk: true });
    expect(await countIn(t, "SELECT count(*) AS n FROM messages WHERE id LIKE ?1 || '-%'", old)).toBe(0);
  });

  it("a failed message is kept while its DLQ entry is, then goes with the next sweep", async () => {
    const t = await freshTenant();
    const label = uniqueKey("ret");
    const [failed] = await failInto(t.token, 1, label);
    // Created and finished 20 days ago (past LOG_RETENTION, 14 d; its id says so too), its DLQ entry 10 days ago
    // (within DLQ_RETENTION, 30 d).
    const id = idFloor(Date.now() - 20 * DAY) + failed.slice(11);
    await dbOf(t).batch([
      dbOf(t).prepare("UPDATE messages SET id = ?3, finished_at = ?2, created_at = ?2 WHERE id = ?1").bind(failed, Date.now() - 20 * DAY, id),
      dbOf(t).prepare("UPDATE dlq SET message_id = ?3, created_at = ?2 WHERE message_id = ?1").bind(failed, Date.now() - 10 * DAY, id),
    ]);
    await sweepAll(env, Date.now(), { rewalk: true });
    expect(await countIn(t, "SELECT count(*) AS n FROM messages WHERE id = ?1", id)).toBe(1);
    const listed = await (await api(`/v2/dlq?label=${label}`, { token: t.token })).json<{ messages: { messageId: string }[] }>();
    expect(listed.messages.map((m) => m.messageId)).toEqual([id]);
    // Once the DLQ entry has expired as well, both go.
    await dbOf(t).prepare("UPDATE dlq SET created_at = ?2 WHERE message_id = ?1").bind(id, Date.now() - 31 * DAY).run();
    await sweepAll(env, Date.now(), { rewalk: true });
    await sweepAll(env, Date.now(), { rewalk: true });
    expect(await countIn(t, "SELECT count(*) AS n FROM dlq WHERE message_id = ?1", id)).toBe(0);
    expect(await countIn(t, "SELECT count(*) AS n FROM messages WHERE id = ?1", id)).toBe(0);
  });

  it("POST /admin/sweep runs the sweeper and answers its report", async () => {
    const res = await api(`/admin/sweep?pruneBudgetMs=1000`, { method: "POST", token: "test-admin-secret" });
    expect(res.status).toBe(200);
    const report = await res.json<Record<string, number>>();
    for (const k of ["redriven", "regated", "watched", "prunedDlq", "prunedMessages", "prunedBodies"]) expect(typeof report[k]).toBe("number");
    expect((await api(`/admin/sweep?pruneBudgetMs=soon`, { method: "POST", token: "test-admin-secret" })).status).toBe(400);
    expect((await api(`/admin/sweep`, { method: "POST" })).status).toBe(401);
  });
});
