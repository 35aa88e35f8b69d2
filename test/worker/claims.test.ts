// The claim of the common path writes nothing: a message delivered at once is read, attempted and written once,
// with its outcome (which carries its ACTIVE entry). A long attempt leases its message after LEASE_AFTER_MS, and a
// message the sweeper re-drove (its id may be in the queue twice) is leased by its claim.
import { createExecutionContext, createMessageBatch, env, getQueueResult } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { LEASE_AFTER_MS } from "../../src/delivery/consumer";
import type { DeliveryTask } from "../../src/env";
import { api, dest, hits, states, uniqueKey, waitFor, waitForHits, waitForState, dueButUnsent } from "./helpers";

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
