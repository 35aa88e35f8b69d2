/**
 * The shard's writer (src/delivery/writes.ts): kinds of writes joined at the same moment share one D1 batch, each
 * kind reads back its own statements' results, and when a shared batch of two kinds fails, each kind is committed
 * again on its own, so one kind's failure never fails the other. Runs on the real local D1; the database object is
 * wrapped only to count its batches.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { Keep } from "../../src/delivery/group-commit";
import { joinWrite, type WriteKind } from "../../src/delivery/writes";

const TABLE = "writes_probe";

/** `env.DB`, with its batches counted (and the statements of each). A new object: a writer of its own. */
function countedDb() {
  const batches: number[] = [];
  const db = new Proxy(env.DB, {
    get(target, key) {
      if (key === "batch") {
        return (stmts: D1PreparedStatement[]) => {
          batches.push(stmts.length);
          return target.batch(stmts);
        };
      }
      const v = Reflect.get(target, key);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { db, batches };
}

interface Row {
  id: string;
  /** Set by `applied`: what the row's own statement returned. */
  returned?: string;
}

/** A kind that inserts one row per item and reads back the id its statement returned; `after` notes its items. */
function kind(db: D1Database, mode: "insert" | "insert or ignore", afters: string[][]): WriteKind<Row> {
  const verb = mode === "insert" ? "INSERT" : "INSERT OR IGNORE";
  return {
    build: (items) => ({
      statements: items.map((r) => db.prepare(`${verb} INTO ${TABLE} (id) VALUES (?1) RETURNING id`).bind(r.id)),
      applied: (results) => {
        items.forEach((r, i) => (r.returned = (results[i].results?.[0] as { id: string } | undefined)?.id));
      },
    }),
    size: () => ({ units: 1, bytes: 10, statements: 1 }),
    after: async (items: Row[], _keep: Keep) => void afters.push(items.map((r) => r.id)),
  };
}

async function stored(ids: string[]): Promise<string[]> {
  const { results } = await env.DB.prepare(`SELECT id FROM ${TABLE} WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id`)
    .bind(JSON.stringify(ids))
    .all<{ id: string }>();
  return results.map((r) => r.id);
}

beforeAll(async () => {
  await env.DB.prepare(`CREATE TABLE IF NOT EXISTS ${TABLE} (id TEXT PRIMARY KEY)`).run();
});

describe("the shard's writer", () => {
  it("puts the writes of two kinds that join at the same moment in one batch, each reading its own results", async () => {
    const { db, batches } = countedDb();
    const afters: string[][] = [];
    const a = kind(db, "insert or ignore", afters);
    const b = kind(db, "insert or ignore", afters);
    const tag = crypto.randomUUID();
    const rows: Row[] = Array.from({ length: 10 }, (_, i) => ({ id: `${tag}-${i}` }));
    // The first leads alone at once; the nine that join meanwhile, of both kinds, go in the next batch.
    await Promise.all(rows.map((r, i) => joinWrite(db, i % 2 ? b : a, r)));
    expect(batches).toEqual([1, 9]);
    expect(await stored(rows.map((r) => r.id))).toEqual(rows.map((r) => r.id).sort());
    // Each row's own statement's result came back to it, whichever kind's part of the batch it was in.
    for (const r of rows) expect(r.returned).toBe(r.id);
    // Each kind's `after` ran once per batch it was in, with its own items only.
    // (In the second batch the kinds come in the order they joined: b's row 1 before a's row 2.)
    expect(afters).toEqual([[rows[0].id], rows.filter((_, i) => i % 2).map((r) => r.id), rows.filter((_, i) => i > 0 && i % 2 === 0).map((r) => r.id)]);
  });

  it("keeps the line apart apart: its writes never share a batch with the shared line's", async () => {
    const { db, batches } = countedDb();
    const afters: string[][] = [];
    const a = kind(db, "insert or ignore", afters);
    const tag = crypto.randomUUID();
    const shared = Array.from({ length: 4 }, (_, i) => joinWrite(db, a, { id: `${tag}-s${i}` }));
    const apart = Array.from({ length: 4 }, (_, i) => joinWrite(db, a, { id: `${tag}-p${i}` }, { apart: true }));
    await Promise.all([...shared, ...apart]);
    // Each line: its first alone, then the other three together.
    expect(batches.sort()).toEqual([1, 1, 3, 3]);
    for (const ids of afters) expect(new Set(ids.map((id) => id.slice(tag.length + 1, tag.length + 2))).size).toBe(1);
  });

  it("when a shared batch fails because of one kind, commits the other on its own and fails only the first", async () => {
    const { db, batches } = countedDb();
    const afters: string[][] = [];
    const safe = kind(db, "insert or ignore", afters);
    const strict = kind(db, "insert", afters);
    const tag = crypto.randomUUID();
    await env.DB.prepare(`INSERT INTO ${TABLE} (id) VALUES (?1)`).bind(`${tag}-taken`).run();
    const first = joinWrite(db, safe, { id: `${tag}-lead` });
    // In line together: two safe rows and a strict one whose plain INSERT hits an existing key.
    const safeRows: Row[] = [{ id: `${tag}-s1` }, { id: `${tag}-s2` }];
    const results = await Promise.allSettled([
      first,
      joinWrite(db, safe, safeRows[0]),
      joinWrite(db, strict, { id: `${tag}-taken` }),
      joinWrite(db, safe, safeRows[1]),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    expect(String((results[2] as PromiseRejectedResult).reason)).toMatch(/UNIQUE/i);
    // The lone first batch, the shared one that failed, then each kind alone (the safe one commits, the strict fails).
    expect(batches).toEqual([1, 3, 2, 1]);
    expect(await stored([`${tag}-lead`, ...safeRows.map((r) => r.id)])).toEqual([`${tag}-lead`, ...safeRows.map((r) => r.id)].sort());
    for (const r of safeRows) expect(r.returned).toBe(r.id);
    // Only what was committed was handed on.
    expect(afters).toEqual([[`${tag}-lead`], safeRows.map((r) => r.id)]);
  });

  it("fails every member of a batch of one kind with its error, as a line of its own would", async () => {
    const { db } = countedDb();
    const afters: string[][] = [];
    const strict = kind(db, "insert", afters);
    const tag = crypto.randomUUID();
    await env.DB.prepare(`INSERT INTO ${TABLE} (id) VALUES (?1)`).bind(`${tag}-taken`).run();
    const first = joinWrite(db, strict, { id: `${tag}-lead` });
    const results = await Promise.allSettled([first, joinWrite(db, strict, { id: `${tag}-taken` }), joinWrite(db, strict, { id: `${tag}-x` })]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected"]);
    expect(await stored([`${tag}-x`])).toEqual([]);
    expect(afters).toEqual([[`${tag}-lead`]]);
  });
});
