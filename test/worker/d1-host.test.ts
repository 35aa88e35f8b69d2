// The D1 host (src/db/remote.ts): `npm start` holds the D1 databases in a workerd process of its own and binds it as
// D1_HOST. Here the worker's own D1Host entry point is bound as D1_HOST_LOOP (vitest.config.ts), a real service
// binding in front of the real local D1 databases of the tests.
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { D1_HOST_SECRET_HEADER, RemoteD1, withD1Host } from "../../src/db/remote";
import type { Env } from "../../src/env";
import worker from "../../src/index";
import { BASE, DEV_TOKEN, counting, dest, uniqueKey, waitForHits } from "./helpers";

const SECRET = "test-d1-secret";
const loop = (env as unknown as { D1_HOST_LOOP: Fetcher }).D1_HOST_LOOP;
const direct = (env as Env).DB;

const remoteDb = (host: Fetcher = loop) => new RemoteD1(host, SECRET, "DB") as unknown as D1Database;

/** A table of its own for one test. */
async function table(label: string): Promise<string> {
  const name = `t_${label}_${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
  await direct.prepare(`CREATE TABLE ${name} (id TEXT PRIMARY KEY, n INTEGER, r REAL, s TEXT, b BLOB)`).run();
  return name;
}

const bytesOf = (v: unknown) => Array.from(new Uint8Array(v as ArrayBuffer));

/** The error a call throws, as code would see it (`String(err)`). */
async function errorOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return String(err);
  }
  throw new Error("expected the call to fail");
}

describe("the D1 host", () => {
  it("gives the same rows, values and bytes as the binding itself", async () => {
    const t = await table("same");
    const remote = remoteDb();
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    const put = await remote.prepare(`INSERT INTO ${t} (id, n, r, s, b) VALUES (?1, ?2, ?3, ?4, ?5)`).bind("a", 42, 1.5, "hé \u{1F600}", bytes).run();
    expect(put.meta.changes).toBe(1);
    await remote.prepare(`INSERT INTO ${t} (id, n, r, s, b) VALUES (?1, ?2, ?3, ?4, ?5)`).bind("b", null, null, null, bytes.buffer).run();

    const sql = `SELECT id, n, r, s, b FROM ${t} ORDER BY id`;
    const there = await remote.prepare(sql).all<Record<string, unknown>>();
    const here = await direct.prepare(sql).all<Record<string, unknown>>();
    expect(there.results.map((r) => ({ ...r, b: bytesOf(r.b) }))).toEqual(here.results.map((r) => ({ ...r, b: bytesOf(r.b) })));
    expect(there.results[0]).toMatchObject({ id: "a", n: 42, r: 1.5, s: "hé \u{1F600}" });
    expect(bytesOf(there.results[0].b)).toEqual([0, 1, 2, 250, 255]);
    expect(there.results[1]).toMatchObject({ id: "b", n: null, r: null, s: null });

    expect(await remote.prepare(`SELECT n FROM ${t} WHERE id = ?1`).bind("a").first("n")).toBe(42);
    expect(await remote.prepare(`SELECT id, s FROM ${t} WHERE id = ?1`).bind("a").first()).toEqual({ id: "a", s: "hé \u{1F600}" });
    expect(await remote.prepare(`SELECT id FROM ${t} WHERE id = ?1`).bind("none").first()).toBeNull();
    expect(await remote.prepare(`SELECT id, n FROM ${t} ORDER BY id`).raw()).toEqual(await direct.prepare(`SELECT id, n FROM ${t} ORDER BY id`).raw());
  });

  it("runs a batch as one atomic D1 batch: a failing statement undoes the others, with D1's own error", async () => {
    const t = await table("atomic");
    const remote = remoteDb();
    await remote.prepare(`INSERT INTO ${t} (id) VALUES ('taken')`).run();
    const batch = (db: D1Database) => db.batch([db.prepare(`INSERT INTO ${t} (id, n) VALUES ('new', 1)`), db.prepare(`INSERT INTO ${t} (id) VALUES ('taken')`)]);
    const there = await errorOf(batch(remote));
    const here = await errorOf(batch(direct));
    expect(there).toMatch(/UNIQUE constraint failed/);
    expect(there).toBe(here);
    expect(await direct.prepare(`SELECT COUNT(*) AS n FROM ${t}`).first("n")).toBe(1);

    const ok = await remote.batch([remote.prepare(`INSERT INTO ${t} (id, n) VALUES ('x', 7)`), remote.prepare(`SELECT n FROM ${t} WHERE id = 'x'`)]);
    expect(ok).toHaveLength(2);
    expect(ok[1].results).toEqual([{ n: 7 }]);
  });

  it("refuses a request without its secret, for an unknown database, or that is not JSON, and runs nothing", async () => {
    const t = await table("refuse");
    const body = JSON.stringify({ db: "DB", op: "run", stmt: { sql: `INSERT INTO ${t} (id) VALUES ('x')`, params: [] } });
    for (const headers of [{}, { [D1_HOST_SECRET_HEADER]: "wrong" }] as Record<string, string>[]) {
      const res = await loop.fetch("http://d1-host/", { method: "POST", headers, body });
      expect(res.status).toBe(403);
      expect((await res.json<{ error: string }>()).error).toMatch(/secret/);
    }
    const other = await loop.fetch("http://d1-host/", {
      method: "POST",
      headers: { [D1_HOST_SECRET_HEADER]: SECRET },
      body: JSON.stringify({ db: "TEST_MIGRATIONS", op: "run", stmt: { sql: "SELECT 1", params: [] } }),
    });
    expect(other.status).toBe(400);
    expect((await other.json<{ error: string }>()).error).toMatch(/no D1 database "TEST_MIGRATIONS"/);
    const junk = await loop.fetch("http://d1-host/", { method: "POST", headers: { [D1_HOST_SECRET_HEADER]: SECRET }, body: "{not json" });
    expect(junk.status).toBe(400);
    expect(await direct.prepare(`SELECT COUNT(*) AS n FROM ${t}`).first("n")).toBe(0);
    await expect(new RemoteD1(loop, "wrong", "DB").prepare("SELECT 1").all()).rejects.toThrow(/answered 403/);
  });

  it("stands in for every database named in D1_HOST_NAMES, the same object each time, and only with a host", () => {
    expect(withD1Host(env as Env)).toBe(env);
    const hosted = { ...(env as Env), D1_HOST: loop, D1_HOST_NAMES: "DB,DB_SHARD_1" };
    const e = withD1Host(hosted);
    expect(e.DB).toBeInstanceOf(RemoteD1);
    expect((e as unknown as Record<string, unknown>).DB_SHARD_1).toBeInstanceOf(RemoteD1);
    expect(withD1Host(hosted)).toBe(e);
    expect(withD1Host({ ...hosted }).DB).toBe(e.DB);
    expect(() => withD1Host({ ...hosted, D1_HOST_NAMES: "DB,TEST_MIGRATIONS" })).toThrow(/not a D1 binding name/);
  });

  it("serves the whole worker: a publish is stored, delivered and deduplicated through it", async () => {
    const { binding: host, requests } = counting(loop);
    const hosted = { ...(env as Env), D1_HOST: host, D1_HOST_NAMES: "DB,DB_SHARD_1" };
    const key = uniqueKey("d1-host");
    const publish = async (dedup: string) => {
      const ctx = createExecutionContext();
      const res = await worker.fetch(
        new Request(`${BASE}/v2/publish/${dest(`${key}/ok`)}`, {
          method: "POST",
          headers: { authorization: `Bearer ${DEV_TOKEN}`, "upstash-deduplication-id": dedup, "content-type": "text/plain" },
          body: "through the host",
        }) as Request<unknown, IncomingRequestCfProperties>,
        hosted,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      return { status: res.status, body: await res.json<{ messageId: string }>() };
    };
    const dedup = uniqueKey("dedup");
    // Two at once: the later of the two may meet the first one's dedup row as D1's UNIQUE error, which publish.ts
    // recognizes by its message (carried through the host as it is, see the batch test above).
    const [a, b] = await Promise.all([publish(dedup), publish(dedup)]);
    const third = await publish(dedup);
    expect(requests()).toBeGreaterThan(0);
    for (const r of [a, b, third]) expect(r.status).toBeLessThan(300);
    const first = a;
    expect(new Set([a, b, third].map((r) => r.body.messageId))).toEqual(new Set([a.body.messageId]));
    const row = await direct.prepare("SELECT id FROM messages WHERE id = ?1").bind(first.body.messageId).first("id");
    expect(row).toBe(first.body.messageId);
    const delivered = await waitForHits(key, 1);
    expect(atob(delivered[0].body)).toBe("through the host");
  });
});
