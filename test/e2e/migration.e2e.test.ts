// Migration 0011 on a database with data in it: messages and their log rows stored by the schema before it must
// come out as rows with their logs, anchors and log marks that the logs API can list (src/db/logs.ts), with nothing
// lost. Runs the real migration files on Miniflare's local D1 (the same SQLite as `wrangler dev`), split into
// statements by wrangler as `wrangler d1 migrations apply` and the worker tests do.
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const WINDOW = 30_000;

type Db = Awaited<ReturnType<Miniflare["getD1Database"]>>;
let mf: Miniflare;
let db: Db;

async function apply(from: number, to: number): Promise<void> {
  const { unstable_splitSqlQuery } = (await import("wrangler")) as unknown as { unstable_splitSqlQuery: (sql: string) => string[] };
  const dir = path.join(root, "migrations");
  for (const f of (await readdir(dir)).filter((n) => n.endsWith(".sql")).sort()) {
    const n = Number(f.slice(0, 4));
    if (n < from || n > to) continue;
    for (const q of unstable_splitSqlQuery(await readFile(path.join(dir, f), "utf8"))) await db.prepare(q).run();
  }
}

const T0 = 1_760_000_000_000;
const T1 = T0 + 100_000;

beforeAll(async () => {
  mf = new Miniflare({ modules: true, script: "export default { fetch() { return new Response('') } }", compatibilityDate: "2026-04-20", d1Databases: ["DB"] });
  db = await mf.getD1Database("DB");
  await apply(1, 10);
  const ins = (sql: string, ...v: unknown[]) => db.prepare(sql).bind(...v).run();
  await ins("INSERT INTO tenants (id, name, created_at) VALUES ('tnt_a', 'a', 1)");
  const msg = (id: string, created: number, state: string, finished: number | null, due: number) =>
    ins(
      `INSERT INTO messages (id, tenant_id, kind, url, method, headers, body, max_retries, not_before, created_at, state, due_at, finished_at)
       VALUES (?1, 'tnt_a', 'message', 'https://example.com/x', 'POST', '{}', X'6869', 3, 0, ?2, ?3, ?4, ?5)`,
      id, created, state, due, finished,
    );
  const ev = (id: string, time: number, state: string, more: { status?: number; body?: string; ref?: string; next?: number; error?: string } = {}) =>
    ins(
      `INSERT INTO events (tenant_id, message_id, time, state, error, next_delivery_time, response_status, response_headers, response_body, response_body_ref)
       VALUES ('tnt_a', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)`,
      id, time, state, more.error ?? null, more.next ?? null, more.status ?? null,
      more.status !== undefined ? '{"Content-Type":["text/plain"]}' : null,
      more.body !== undefined ? new TextEncoder().encode(more.body) : null, more.ref ?? null,
    );
  // A: delivered at once. B: delayed 10 minutes, failed once, then delivered with a body kept in R2. C: pending.
  await msg("msg_legacyA", T0, "DELIVERED", T0 + 10, T0);
  await ev("msg_legacyA", T0, "CREATED");
  await ev("msg_legacyA", T0 + 5, "ACTIVE");
  await ev("msg_legacyA", T0 + 10, "DELIVERED", { status: 200, body: "ok" });
  await msg("msg_legacyB", T1, "DELIVERED", T1 + 660_005, T1 + 600_000);
  await ev("msg_legacyB", T1, "CREATED", { next: T1 + 600_000 });
  await ev("msg_legacyB", T1 + 600_000, "ACTIVE");
  await ev("msg_legacyB", T1 + 600_010, "ERROR", { status: 500, body: "boom", error: "HTTP 500" });
  await ev("msg_legacyB", T1 + 600_010, "RETRY", { next: T1 + 660_000 });
  await ev("msg_legacyB", T1 + 660_000, "ACTIVE");
  await ev("msg_legacyB", T1 + 660_005, "DELIVERED", { status: 200, ref: "tnt_a/abcdef" });
  await msg("msg_legacyC", T1 + 1, "CREATED", null, T1 + 1);
  await ev("msg_legacyC", T1 + 1, "CREATED");
  await apply(11, 9999);
}, 120_000);

afterAll(async () => {
  await mf?.dispose();
});

interface Entry {
  t: number;
  a: number;
  s: string;
  c?: number | null;
  x?: string | null;
  r?: string | null;
  n?: number | null;
  e?: string | null;
}

async function logOf(id: string): Promise<Entry[]> {
  const row = await db.prepare("SELECT log FROM messages WHERE id = ?1").bind(id).first<{ log: string }>();
  return JSON.parse(row!.log) as Entry[];
}

describe("migration 0011 on stored data", () => {
  it("moves every log row into its message's log, in order, with its response", async () => {
    expect(await db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'events'").first("n")).toBe(0);
    const a = await logOf("msg_legacyA");
    expect(a.map((e) => [e.t, e.s])).toEqual([[T0, "CREATED"], [T0 + 5, "ACTIVE"], [T0 + 10, "DELIVERED"]]);
    expect(a[2].c).toBe(200);
    expect(Buffer.from(a[2].x!, "hex").toString()).toBe("ok");
    const b = await logOf("msg_legacyB");
    expect(b.map((e) => e.s)).toEqual(["CREATED", "ACTIVE", "ERROR", "RETRY", "ACTIVE", "DELIVERED"]);
    expect(b[0].n).toBe(T1 + 600_000);
    expect(b[2].e).toBe("HTTP 500");
    expect(Buffer.from(b[2].x!, "hex").toString()).toBe("boom");
    expect(b[5].r).toBe("tnt_a/abcdef");
    expect((await logOf("msg_legacyC")).map((e) => e.s)).toEqual(["CREATED"]);
    const body = await db.prepare("SELECT hex(body) AS h FROM messages WHERE id = 'msg_legacyA'").first<string>("h");
    expect(body).toBe("6869");
  });

  it("anchors late entries with log marks, so the logs API finds every entry within its window", async () => {
    const marks = await db.prepare("SELECT time FROM log_marks WHERE message_id = 'msg_legacyB' ORDER BY time").all<{ time: number }>();
    expect(marks.results.map((m) => m.time)).toEqual([T1 + 600_000, T1 + 600_010, T1 + 660_000, T1 + 660_005]);
    expect(await db.prepare("SELECT anchor_at FROM messages WHERE id = 'msg_legacyB'").first("anchor_at")).toBe(T1 + 660_005);
    expect(await db.prepare("SELECT anchor_at FROM messages WHERE id = 'msg_legacyA'").first("anchor_at")).toBe(T0);
    // The listing's invariant, over every migrated entry: its anchor is its message's creation or one of its
    // marks, and it lies within the window after that anchor.
    const rows = await db.prepare("SELECT id, created_at, log FROM messages").all<{ id: string; created_at: number; log: string }>();
    const markSet = new Set((await db.prepare("SELECT message_id || ':' || time AS k FROM log_marks").all<{ k: string }>()).results.map((r) => r.k));
    for (const r of rows.results) {
      for (const e of JSON.parse(r.log) as Entry[]) {
        expect(e.a === r.created_at || markSet.has(`${r.id}:${e.a}`)).toBe(true);
        expect(e.t >= e.a && e.t <= e.a + WINDOW).toBe(true);
      }
    }
  });

  it("keeps the sweeper's view: pending messages watched, legacy ids and response keys listed", async () => {
    const watch = await db.prepare("SELECT id, watch FROM messages ORDER BY id").all<{ id: string; watch: number }>();
    expect(watch.results).toEqual([
      { id: "msg_legacyA", watch: 0 },
      { id: "msg_legacyB", watch: 0 },
      { id: "msg_legacyC", watch: 1 },
    ]);
    const legacy = await db.prepare("SELECT id FROM legacy_messages ORDER BY id").all<{ id: string }>();
    expect(legacy.results.map((r) => r.id)).toEqual(["msg_legacyA", "msg_legacyB", "msg_legacyC"]);
    const refs = await db.prepare("SELECT ref, message_id FROM legacy_response_refs").all();
    expect(refs.results).toEqual([{ ref: "tnt_a/abcdef", message_id: "msg_legacyB" }]);
  });

  it("a message's marks are deleted with it", async () => {
    await db.prepare("DELETE FROM messages WHERE id = 'msg_legacyB'").run();
    expect(await db.prepare("SELECT count(*) AS n FROM log_marks WHERE message_id = 'msg_legacyB'").first("n")).toBe(0);
  });
});
