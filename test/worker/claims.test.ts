// The claim of the common path writes nothing: a message delivered at once is read, attempted and written once,
// with its outcome (which carries its ACTIVE entry). A long attempt leases its message after LEASE_AFTER_MS, and a
// message the sweeper re-drove (its id may be in the queue twice) is leased by its claim.
import { createExecutionContext, createMessageBatch, env, getQueueResult } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { LEASE_AFTER_MS } from "../../src/delivery/consumer";
import { newMessage } from "../../src/core/message";
import { claimStatements, insertMessage, loadForDelivery, rowToMessage } from "../../src/db/messages";
import type { DeliveryTask } from "../../src/env";
import { api, dbOf, dest, freshTenant, hits, plainSpec, states, uniqueKey, waitFor, waitForHits, waitForState, dueButUnsent } from "./helpers";

type Row = { state: string; lease_until: number | null; redriven_at: number | null };
const row = (id: string) => env.DB.prepare("SELECT state, lease_until, redriven_at FROM messages WHERE id = ?1").bind(id).first<Row>();


/** Runs the queue handler on one pack of ids, as the queue would. */
async function consume(ids: string[]): Promise<void> {
  const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: `pack-${uniqueKey()}`, timestamp: new Date(), attempts: 1, body: { ids } }]);
  const ctx = createExecutionContext();
  await worker.queue(batch, env);
  await getQueueResult(batch, ctx);
}

async function logTimes(id: string): Promise<{ state: string; time: number }[]> {
  const res = await api(`/v2/logs?messageId=${id}&order=asc`);
  return (await res.json<{ logs: { state: string; time: number }[] }>()).logs.map((l) => ({ state: l.state, time: l.time }));
}

describe("claims", () => {
  it("an attempt shorter than LEASE_AFTER_MS writes no claim; its ACTIVE entry comes with its outcome, at the claim's time", async () => {
    const key = uniqueKey("free");
    const id = await dueButUnsent(dest(`${key}/sleep/400`));
    const consuming = consume([id]);
    const [hit] = await waitForHits(key, 1);
    // The destination has the request; the row is as the publish left it.
    expect(await row(id)).toEqual({ state: "CREATED", lease_until: null, redriven_at: null });
    await consuming;
    const log = await logTimes(id);
    expect(log.map((l) => l.state)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
    const [created, active, delivered] = log.map((l) => l.time);
    expect(active).toBeGreaterThanOrEqual(created);
    expect(active).toBeLessThanOrEqual(hit.time);
    expect(delivered).toBeGreaterThanOrEqual(active + 400);
    expect(await row(id)).toEqual({ state: "DELIVERED", lease_until: null, redriven_at: null });
  });

  it("an attempt that runs past LEASE_AFTER_MS leases its message: the log shows it under way and a cancel waits for it", async () => {
    const key = uniqueKey("long");
    const cb = uniqueKey("longcb");
    const id = await dueButUnsent(dest(`${key}/sleep/2500`), { headers: { "upstash-callback": dest(`${cb}/ok`) } });
    const consuming = consume([id]);
    await waitForHits(key, 1);
    const leased = await waitFor("the lease", async () => ((await row(id))?.lease_until != null ? row(id) : undefined), LEASE_AFTER_MS + 2000);
    expect(leased!.state).toBe("ACTIVE");
    expect(await states(id)).toEqual(["CREATED", "ACTIVE"]);
    // Cancelled while leased: the attempt finishes, its success is recorded, and the cancel applies to nothing more.
    expect((await api(`/v2/messages/${id}`, { method: "DELETE" })).status).toBe(200);
    expect(await row(id)).toMatchObject({ state: "CANCEL_REQUESTED" });
    await consuming;
    expect(await waitForState(id, "DELIVERED")).toEqual(["CREATED", "ACTIVE", "CANCEL_REQUESTED", "DELIVERED"]);
    expect((await waitForHits(cb, 1)).length).toBe(1);
  });

  it("long attempts of one batch lease their messages while a short one in the same batch ends without a lease", async () => {
    const shortKey = uniqueKey("short");
    const longKey = uniqueKey("long2");
    const short = await dueButUnsent(dest(`${shortKey}/sleep/50`));
    const longs = [await dueButUnsent(dest(`${longKey}/sleep/2500`)), await dueButUnsent(dest(`${longKey}/sleep/2500`))];
    const consuming = consume([short, ...longs]);
    await waitForHits(longKey, 2);
    await waitForHits(shortKey, 1);
    // The short attempt ends first; the long ones are still watched and take their leases after LEASE_AFTER_MS.
    for (const id of longs) {
      const leased = await waitFor(`the lease of ${id}`, async () => ((await row(id))?.lease_until != null ? row(id) : undefined), LEASE_AFTER_MS + 2000);
      expect(leased!.state).toBe("ACTIVE");
    }
    await consuming;
    expect(await states(short)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
    expect(await row(short)).toEqual({ state: "DELIVERED", lease_until: null, redriven_at: null });
    for (const id of longs) expect(await states(id)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
  });

  it("a message the sweeper re-drove is leased by its claim, so a second copy of its id attempts nothing", async () => {
    const key = uniqueKey("redriven");
    const id = await dueButUnsent(dest(`${key}/sleep/600`));
    await env.DB.prepare("UPDATE messages SET redriven_at = ?2, watch = 1 WHERE id = ?1").bind(id, Date.now()).run();
    const first = consume([id]);
    await waitForHits(key, 1);
    const claimed = await row(id);
    expect(claimed!.state).toBe("ACTIVE");
    expect(claimed!.lease_until).toBeGreaterThan(Date.now());
    expect(claimed!.redriven_at).toBeNull();
    // The other copy of the id, while the first attempt runs: the row is leased, so it is left alone.
    await consume([id]);
    await first;
    expect((await hits(key)).length).toBe(1);
    expect(await states(id)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
  });

  it("a claim reads every field of a row as the other reads do, free or re-driven, with the tenant's signing key", async () => {
    const t = await freshTenant();
    const db = dbOf(t);
    const now = Date.now();
    // Every optional field set, text that needs escaping in JSON, and a body larger than the hex cap (read as a BLOB).
    const rich = await dueButUnsent(dest(`${uniqueKey("rich")}/ok`), {
      tenant: t,
      headers: {
        "content-type": 'text/plain; x="1"',
        "upstash-forward-x-quote": 'say "hi", \\ and \t',
        "upstash-retries": "2",
        "upstash-retry-delay": "1000 * (1 + retried)",
        "upstash-timeout": "5s",
        "upstash-label": "a,b",
        "upstash-callback": dest("cb?x=1"),
        "upstash-callback-forward-x-c": "c",
        "upstash-failure-callback": dest("fcb"),
        "upstash-flow-control-key": "fk",
        "upstash-flow-control-value": "parallelism=2",
      },
    });
    const big = Uint8Array.from({ length: 600_000 }, (_, i) => (i * 7) & 0xff);
    const large = newMessage(plainSpec, { tenantId: t.tenantId, url: dest("claims/big"), body: big, callerIp: "10.0.0.2", shard: t.shard }, now);
    await db.batch([insertMessage(db, large)]);
    const every = newMessage(plainSpec, { tenantId: t.tenantId, url: dest("claims/bytes"), body: Uint8Array.from({ length: 256 }, (_, b) => b), callerIp: null, shard: t.shard }, now);
    await db.batch([insertMessage(db, every)]);
    // The first one re-driven (and let go by its flow-control gate): the written statement takes it, the free one the others.
    await db.prepare("UPDATE messages SET redriven_at = ?2, watch = 1, held = 0 WHERE id = ?1").bind(rich, now).run();
    const ids = [rich, large.id, every.id];
    const expected = new Map<string, Awaited<ReturnType<typeof loadForDelivery>>>();
    for (const id of ids) expected.set(id, await loadForDelivery(db, id));
    expect(expected.get(rich)!.message).toMatchObject({ labels: ["a", "b"], maxRetries: 2, timeoutMs: 5000 });
    expect(expected.get(rich)!.message.callbackConfig).not.toBeNull();
    expect(expected.get(rich)!.message.flowControl).not.toBeNull();
    expect(expected.get(large.id)!.message.body.length).toBe(big.length);
    const later = now + 1;
    const stmts = claimStatements(db, ids, later, { maxTimeoutMs: 60_000, graceMs: 1_000, earlyMs: 0 });
    const [written, free] = await db.batch<Record<string, unknown>>([stmts.written, stmts.free]);
    expect(written.results.length).toBe(1);
    expect(free.results.length).toBe(2);
    for (const claimed of [...written.results, ...free.results]) {
      const want = expected.get(String(claimed.id))!;
      expect(String(claimed.signing_key)).toBe(want.signingKey);
      const got = rowToMessage(claimed);
      if (got.id === rich) {
        // The claim leased it, and the row it returned is the row after that write.
        expect(got).toEqual({ ...want.message, state: "ACTIVE", leaseUntil: later + 5000 + 1_000, logBytes: got.logBytes });
        expect(got.logBytes).toBeGreaterThan(want.message.logBytes!);
      } else {
        expect(got).toEqual(want.message);
      }
    }
  });

  it("two copies of an id attempted at the same moment record one outcome, one callback and one retry count", async () => {
    const key = uniqueKey("race");
    const cb = uniqueKey("racecb");
    const id = await dueButUnsent(dest(`${key}/sleep-fail/300`), {
      headers: { "upstash-retries": "2", "upstash-retry-delay": "60000", "upstash-callback": dest(`${cb}/ok`) },
    });
    // Two consumers take the same id at once (a queue that delivered its pack twice): both claims read it idle.
    await Promise.all([consume([id]), consume([id])]);
    const attempts = (await hits(key)).length;
    expect(attempts).toBeGreaterThanOrEqual(1);
    expect(attempts).toBeLessThanOrEqual(2);
    // Whatever the number of calls, one outcome: one ERROR, one RETRY, retries counted once, one callback.
    await waitForHits(cb, 1);
    await new Promise((r) => setTimeout(r, 500));
    expect((await hits(cb)).length).toBe(1);
    expect(await states(id)).toEqual(["CREATED", "ACTIVE", "ERROR", "RETRY"]);
    const retried = await env.DB.prepare("SELECT retried FROM messages WHERE id = ?1").bind(id).first<number>("retried");
    expect(retried).toBe(1);
  });
});
