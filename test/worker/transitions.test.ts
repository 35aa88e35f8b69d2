/**
 * The outcomes of a group commit that are deliveries share their transitions (transitionsDelivered in
 * src/db/messages.ts, used by the consumer's outcome commit). For pairs of identical messages, one moved with
 * `transition` and the other with the shared statement, the rows must come out the same: state, finish time, lease,
 * log entries and their anchors; and a row whose lease or retries moved on is left alone by both. The consumer's use of
 * it is covered by every delivery test that delivers more than one message in a batch.
 */
import { describe, expect, it } from "vitest";
import { newMessage } from "../../src/core/message";
import { LOG_WINDOW_MS } from "../../src/db/logs";
import { type Delivered, insertMessage, transition, transitionsDelivered } from "../../src/db/messages";
import { dbOf, freshTenant, plainSpec } from "./helpers";

interface Case {
  label: string;
  /** The lease the row holds, and the one the outcome's guard names. */
  lease: number | null;
  guardLease: number | null;
  retried: number;
  guardRetried: number;
  /** When the claim wrote nothing, the attempt's start: its ACTIVE entry comes first, at that time. */
  activeAt: number | null;
  /** How long after creation the outcome is written (past the log window moves the anchor). */
  after: number;
}

const CASES: Case[] = [
  { label: "claim wrote ACTIVE", lease: 1_000, guardLease: 1_000, retried: 0, guardRetried: 0, activeAt: null, after: 50 },
  { label: "claim wrote nothing", lease: null, guardLease: null, retried: 0, guardRetried: 0, activeAt: -20, after: 80 },
  { label: "a retry, past the log window", lease: 2_000, guardLease: 2_000, retried: 2, guardRetried: 2, activeAt: null, after: LOG_WINDOW_MS + 5_000 },
  { label: "no ACTIVE yet, past the log window", lease: null, guardLease: null, retried: 1, guardRetried: 1, activeAt: LOG_WINDOW_MS + 1_000, after: LOG_WINDOW_MS + 4_000 },
  { label: "lost its lease", lease: 3_000, guardLease: 2_999, retried: 0, guardRetried: 0, activeAt: null, after: 60 },
  { label: "retried meanwhile", lease: null, guardLease: null, retried: 1, guardRetried: 0, activeAt: 10, after: 60 },
];

describe("shared transitions of deliveries", () => {
  it("leave each row as its own transition does, and apply only where the lease and retries still match", async () => {
    const t = await freshTenant();
    const db = dbOf(t);
    const created = Date.now() - 3_600_000;
    const make = () => newMessage({ ...plainSpec, maxRetries: 3 }, { tenantId: t.tenantId, url: "https://example.com/t", body: new Uint8Array([1, 2]), callerIp: null, shard: t.shard }, created);
    const one: string[] = [];
    const shared: Delivered[] = [];
    for (const c of CASES) {
      const pair = [make(), make()];
      for (const m of pair) {
        const lease = c.lease === null ? null : created + c.lease;
        await db.batch([
          insertMessage(db, m),
          db.prepare("UPDATE messages SET lease_until = ?2, retried = ?3, state = 'ACTIVE' WHERE id = ?1").bind(m.id, lease, c.retried),
        ]);
      }
      const guard = (id: string) => ({ id, leaseUntil: c.guardLease === null ? null : created + c.guardLease, retried: c.guardRetried });
      const entry = { state: "DELIVERED" as const, responseStatus: 200, responseHeaders: { "Content-Type": ["text/plain"] }, responseBody: new TextEncoder().encode(c.label), responseBodyRef: null };
      const now = created + c.after;
      const activeAt = c.activeAt === null ? null : created + c.activeAt;
      await db.batch([transition(db, guard(pair[0].id), { to: "DELIVERED" }, [entry], now, activeAt)]);
      one.push(pair[0].id);
      shared.push({ guard: guard(pair[1].id), entry, activeAt, now });
    }
    const stmts = transitionsDelivered(db, shared);
    expect(stmts).toHaveLength(2); // with and without an ACTIVE entry
    // Each row is found by its id: the plan looks messages up by its primary key for each row bound, and never scans
    // the table (it grows with traffic; test/worker/query-plans.test.ts for the other statements).
    for (const d of [shared.filter((x) => x.activeAt === null), shared.filter((x) => x.activeAt !== null)]) {
      const { statement, params } = transitionsDelivered(db, d)[0] as unknown as { statement: string; params: unknown[] };
      const plan = await db.prepare(`EXPLAIN QUERY PLAN ${statement}`).bind(...params).all<{ detail: string }>();
      const lines = plan.results.map((r) => r.detail);
      expect(lines.some((l) => /^SEARCH messages USING PRIMARY KEY \(id=\?\)/.test(l)), lines.join("\n")).toBe(true);
      expect(lines.filter((l) => /^SCAN messages\b/.test(l))).toEqual([]);
    }
    const results = await db.batch(stmts);
    const applied = results.flatMap((r) => (r.results as { id: string }[]).map((x) => x.id)).sort();
    const expected = CASES.flatMap((c, i) => (c.guardLease === c.lease && c.guardRetried === c.retried ? [shared[i].guard.id] : [])).sort();
    expect(applied).toEqual(expected);
    expect(applied).toHaveLength(4);
    for (let i = 0; i < CASES.length; i++) {
      const row = (id: string) =>
        db.prepare("SELECT state, finished_at, lease_until, retried, anchor_at, log FROM messages WHERE id = ?1").bind(id).first<Record<string, unknown>>();
      // The log compares as JSON: a time bound as a JS number is written as a REAL by `transition` (1.0), and as an
      // integer from the shared statement's JSON (1); both read back as the same number.
      const [a, b] = (await Promise.all([row(one[i]), row(shared[i].guard.id)])).map((r): Record<string, unknown> => ({ ...r, log: JSON.parse(String(r?.log)) }));
      expect(b, CASES[i].label).toEqual(a);
      const delivered = CASES[i].guardLease === CASES[i].lease && CASES[i].guardRetried === CASES[i].retried;
      expect(a.state, CASES[i].label).toBe(delivered ? "DELIVERED" : "ACTIVE");
    }
  });

  it("bind at most 100 rows to a statement", () => {
    const entry = { state: "DELIVERED" as const, responseStatus: 200, responseHeaders: {}, responseBody: new Uint8Array(0), responseBodyRef: null };
    const list: Delivered[] = Array.from({ length: 230 }, (_, i) => ({
      guard: { id: `msg_${i}`, leaseUntil: null, retried: 0 },
      entry,
      activeAt: i < 150 ? null : 1,
      now: 2,
    }));
    const sizes = transitionsDelivered(dbOf({ shard: 0 }), list).map((x) => (x as unknown as { params: unknown[] }).params.length);
    expect(sizes).toEqual([80, 100, 50]); // with an ACTIVE entry first, then without
  });
});
