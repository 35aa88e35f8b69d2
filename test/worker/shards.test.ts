/**
 * Tenants over two D1 shards (the worker tests bind DB and DB_SHARD_1): a tenant's data lives in its shard only,
 * its message ids name the shard, everything works end to end there, and adding a shard sends new tenants to the
 * emptiest shard while existing tenants stay where they are.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { chooseShard, shardCount, shardOfMessageId } from "../../src/db/shards";
import { createTenant } from "../../src/db/tenants";
import type { Env } from "../../src/env";
import { api, dbOf, dest, failInto, freshTenant, publishOk, states, uniqueKey, waitForHits } from "./helpers";

const count = async (db: D1Database, sql: string, ...params: unknown[]) => Number(await db.prepare(sql).bind(...params).first("n"));

describe("shards", () => {
  it("the worker tests run with two shards, and new tenants land in both", async () => {
    expect(shardCount(env as Env)).toBe(2);
    const shards = new Set<number>();
    for (let i = 0; i < 4; i++) shards.add((await freshTenant()).shard);
    expect([...shards].sort()).toEqual([0, 1]);
  });

  it("a tenant of shard 1: ids name the shard, rows live only there, delivery, callbacks and the DLQ work", async () => {
    const t = await freshTenant(1);
    const key = uniqueKey("sh1");
    const id = await publishOk(dest(`${key}/ok`), { token: t.token, headers: { "upstash-callback": dest(`${key}-cb/ok`) } });
    expect(id).toMatch(/^msg_[0-9A-Za-z]{7}1_/);
    expect(shardOfMessageId(id)).toBe(1);
    await waitForHits(`${key}-cb`, 1);
    expect(await states(id, t.token)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
    expect(await count(env.DB_SHARD_1, "SELECT count(*) AS n FROM messages WHERE id = ?1", id)).toBe(1);
    expect(await count(env.DB, "SELECT count(*) AS n FROM messages WHERE tenant_id = ?1", t.tenantId)).toBe(0);
    const callback = await env.DB_SHARD_1.prepare("SELECT id FROM messages WHERE parent_id = ?1").bind(id).first<{ id: string }>();
    expect(callback?.id).toMatch(/^msg_[0-9A-Za-z]{7}1_/);
    // Keys are in the shard, the tenant and its tokens in the primary.
    expect(await count(env.DB_SHARD_1, "SELECT count(*) AS n FROM signing_keys WHERE tenant_id = ?1", t.tenantId)).toBe(1);
    expect(await count(env.DB, "SELECT count(*) AS n FROM tokens WHERE tenant_id = ?1", t.tenantId)).toBe(2);
    expect(await count(env.DB, "SELECT shard AS n FROM tenants WHERE id = ?1", t.tenantId)).toBe(1);

    const label = uniqueKey("sh1dlq");
    await failInto(t.token, 1, label);
    const retry = await api(`/v2/dlq/retry?label=${label}`, { method: "POST", token: t.token, headers: { "upstash-delay": "1h" } });
    const { responses } = await retry.json<{ responses: { messageId: string }[] }>();
    expect(responses[0].messageId).toMatch(/^msg_[0-9A-Za-z]{7}1_/);
  });

  it("queues and schedules of a shard-1 tenant deliver", async () => {
    const t = await freshTenant(1);
    const key = uniqueKey("sh1q");
    const res = await api(`/v2/enqueue/q1/${dest(`${key}/ok`)}`, { method: "POST", token: t.token, body: "x" });
    expect(res.status).toBe(200);
    await waitForHits(key, 1);
    expect(await count(dbOf(t), "SELECT count(*) AS n FROM queues WHERE tenant_id = ?1", t.tenantId)).toBe(1);
  });

  it("bulk calls of a tenant never reach another shard's tenants", async () => {
    const a = await freshTenant(1);
    const b = await freshTenant(0);
    const theirs = await publishOk(dest("sh/ok"), { token: b.token, headers: { "upstash-delay": "1h" } });
    await publishOk(dest("sh/ok"), { token: a.token, headers: { "upstash-delay": "1h" } });
    expect(await (await api(`/v2/messages`, { method: "DELETE", token: a.token })).json()).toEqual({ cancelled: 1 });
    expect((await api(`/v2/messages/${theirs}`, { token: b.token })).status).toBe(200);
    // Another tenant's id sent to the wrong shard finds nothing.
    expect((await api(`/v2/messages/${theirs}`, { token: a.token })).status).toBe(404);
  });

  it("adding a shard: new tenants go to the emptiest shard, existing tenants stay and keep working", async () => {
    // Before: a deployment with the primary only.
    const before = { ...(env as Env), DB_SHARD_1: undefined } as unknown as Env;
    expect(shardCount(before)).toBe(1);
    const old = await createTenant(before, "before", Date.now());
    expect(old.shard).toBe(0);
    // After: DB_SHARD_1 bound (and migrated). The next tenant goes wherever the fewest tenants are.
    const { results } = await env.DB.prepare("SELECT shard, count(*) AS n FROM tenants GROUP BY shard").all<{ shard: number; n: number }>();
    const load = new Map(results.map((r) => [Number(r.shard), Number(r.n)]));
    const emptiest = (load.get(1) ?? 0) < (load.get(0) ?? 0) ? 1 : 0;
    expect(await chooseShard(env as Env)).toBe(emptiest);
    const next = await createTenant(env as Env, "after", Date.now());
    expect(next.shard).toBe(emptiest);
    // The old tenant still resolves to shard 0 and delivers.
    const key = uniqueKey("old");
    const id = await publishOk(dest(`${key}/ok`), { token: old.token });
    expect(shardOfMessageId(id)).toBe(0);
    await waitForHits(key, 1);
    expect(await count(env.DB, "SELECT count(*) AS n FROM messages WHERE id = ?1", id)).toBe(1);
  });
});
