// Long attempts: an attempt whose timeout does not fit what is left of the consumer invocation goes, as claimed,
// to a Runner object; the invocation ends at once, and the attempt is made once and recorded once.
import { createMessageBatch, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { consumeBatch, LEASE_AFTER_MS } from "../../src/delivery/consumer";
import type { DeliveryTask, Env } from "../../src/env";
import { dest, freshTenant, hits, states, uniqueKey, waitForHits, waitForState, dueButUnsent } from "./helpers";

describe("long attempts", () => {
  it("an 8 s attempt under a 5 s invocation budget is made once, outlives the invocation, and is recorded once", async () => {
    const t = await freshTenant();
    const key = uniqueKey("long");
    const messageId = await dueButUnsent(dest(`${key}/sleep/8000`), { tenant: t, headers: { "upstash-timeout": "10s", "upstash-retries": "0" } });
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: "p", timestamp: new Date(), attempts: 1, body: { ids: [messageId] } }]);
    const started = Date.now();
    await consumeBatch(batch, { ...(env as Env), CONSUMER_BUDGET: "5s" });
    // The invocation is over long before the destination answers.
    expect(Date.now() - started).toBeLessThan(2000);
    await waitForHits(key, 1);
    // Under way: the attempt leases its message (with its ACTIVE entry) once it has run LEASE_AFTER_MS.
    expect(await waitForState(messageId, "ACTIVE", LEASE_AFTER_MS + 3000, t.token)).toEqual(["CREATED", "ACTIVE"]);
    const logged = await waitForState(messageId, "DELIVERED", 15_000, t.token);
    expect(logged).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
    const [hit] = await hits(key);
    expect(hit.endTime! - hit.time).toBeGreaterThanOrEqual(7900);
    // No second attempt follows (the lease held until the outcome, which is written once).
    await new Promise((r) => setTimeout(r, 1000));
    expect((await hits(key)).length).toBe(1);
  }, 30_000);

  it("an attempt that fits the budget runs in the consumer invocation", async () => {
    const t = await freshTenant();
    const key = uniqueKey("short");
    const messageId = await dueButUnsent(dest(`${key}/sleep/300`), { tenant: t, headers: { "upstash-timeout": "2s" } });
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: "p", timestamp: new Date(), attempts: 1, body: { ids: [messageId] } }]);
    await consumeBatch(batch, { ...(env as Env), CONSUMER_BUDGET: "5s" });
    // Recorded by the time the invocation returns.
    expect(await states(messageId, t.token)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
  });
});
