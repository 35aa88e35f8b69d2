// Detached attempts (the dev-mode default): the consumer acknowledges a pack once its ids are claimed, and the
// attempts run on in the background (in Runner objects, handed the rows as the claim read them), so a slow
// destination never holds up the next batch.
import { createExecutionContext, createMessageBatch, env, getQueueResult } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { consumeBatch, LEASE_AFTER_MS, runnerChunks } from "../../src/delivery/consumer";
import { RUNNERS } from "../../src/objects/runner";
import { RELAY_BATCH } from "../../src/delivery/relay";
import type { DeliveryTask, Env } from "../../src/env";
import { dbOf, dest, freshTenant, uniqueKey, waitFor, waitForHits, waitForState, dueButUnsent } from "./helpers";

const detachedEnv = { ...(env as Env), DETACHED_ATTEMPTS: "true" };


describe("detached attempts", () => {
  it("go to as few Runner calls as keep each within 6 attempts, at most one call per Runner, taking turns", () => {
    // A small batch is one call (it used to be split by id over all Runners: a call for almost every attempt).
    expect(runnerChunks(4, 3)).toEqual([[3, 0, 4]]);
    expect(runnerChunks(13, RUNNERS - 1)).toEqual([
      [RUNNERS - 1, 0, 5],
      [0, 5, 10],
      [1, 10, 13],
    ]);
    const big = runnerChunks(250, 0);
    expect(big).toHaveLength(RUNNERS);
    expect(new Set(big.map(([n]) => n)).size).toBe(RUNNERS);
    expect(big.map(([, from, to]) => to - from).reduce((a, b) => a + b)).toBe(250);
    expect(big.every(([, from], i) => i === 0 || from === big[i - 1][2])).toBe(true);
    // Through the attempt relay (npm start), a Runner call holds one connection for up to RELAY_BATCH attempts.
    expect(runnerChunks(100, 2, RELAY_BATCH)).toEqual([[2, 0, 100]]);
    expect(runnerChunks(250, 0, RELAY_BATCH)).toEqual([[0, 0, 84], [1, 84, 168], [2, 168, 250]]);
  });

  it("acknowledge the pack before a slow destination answers, and record the outcome after", async () => {
    const t = await freshTenant();
    const key = uniqueKey("det");
    const slow = await dueButUnsent(dest(`${key}/sleep/1500`), { tenant: t });
    const fast = await dueButUnsent(dest(`${key}-fast/ok`), { tenant: t });
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [
      { id: "pack", timestamp: new Date(), attempts: 1, body: { ids: [slow, fast] } },
    ]);
    const ctx = createExecutionContext();
    const started = Date.now();
    await consumeBatch(batch, detachedEnv);
    ctx.waitUntil(Promise.resolve());
    // The handler is done long before the slow destination answers. The claim wrote nothing; the slow attempt
    // leases its message once it has run LEASE_AFTER_MS.
    expect(Date.now() - started).toBeLessThan(LEASE_AFTER_MS);
    const row = () => dbOf(t).prepare("SELECT state, lease_until FROM messages WHERE id = ?1").bind(slow).first<{ state: string; lease_until: number | null }>();
    expect(await row()).toEqual({ state: "CREATED", lease_until: null });
    const leased = await waitFor("the slow attempt's lease", async () => ((await row())!.lease_until !== null ? row() : undefined), 3000);
    expect(leased!.state).toBe("ACTIVE");
    expect(leased!.lease_until).toBeGreaterThan(Date.now());
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(["pack"]);
    await waitForHits(key, 1);
    await waitForHits(`${key}-fast`, 1);
    expect(await waitForState(slow, "DELIVERED", 10_000, t.token)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
    expect(await waitForState(fast, "DELIVERED", 10_000, t.token)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
  });
});
