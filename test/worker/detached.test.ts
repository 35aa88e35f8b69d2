// Detached attempts (the dev-mode default): the consumer acknowledges a pack once its ids are claimed, and the
// attempts run on in the background, so a slow destination never holds up the next batch.
import { createExecutionContext, createMessageBatch, env, getQueueResult } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { consumeBatch } from "../../src/delivery/consumer";
import type { DeliveryTask, Env } from "../../src/env";
import { dbOf, dest, freshTenant, publish, uniqueKey, waitForHits, waitForState, makeDue } from "./helpers";

const detachedEnv = { ...(env as Env), DETACHED_ATTEMPTS: "true" };

async function dueButUnsent(t: { token: string; shard: number }, url: string): Promise<string> {
  const res = await publish(url, { token: t.token, headers: { "upstash-delay": "1h" } });
  const { messageId } = await res.json<{ messageId: string }>();
  await makeDue(dbOf(t), [messageId]);
  return messageId;
}

describe("detached attempts", () => {
  it("acknowledge the pack before a slow destination answers, and record the outcome after", async () => {
    const t = await freshTenant();
    const key = uniqueKey("det");
    const slow = await dueButUnsent(t, dest(`${key}/sleep/1500`));
    const fast = await dueButUnsent(t, dest(`${key}-fast/ok`));
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [
      { id: "pack", timestamp: new Date(), attempts: 1, body: { ids: [slow, fast] } },
    ]);
    const ctx = createExecutionContext();
    const started = Date.now();
    await consumeBatch(batch, detachedEnv);
    ctx.waitUntil(Promise.resolve());
    // The handler is done long before the slow destination answers; both ids are claimed (leased).
    expect(Date.now() - started).toBeLessThan(1000);
    const row = await dbOf(t).prepare("SELECT state, lease_until FROM messages WHERE id = ?1").bind(slow).first<{ state: string; lease_until: number }>();
    expect(row!.state).toBe("ACTIVE");
    expect(row!.lease_until).toBeGreaterThan(Date.now());
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(["pack"]);
    await waitForHits(key, 1);
    await waitForHits(`${key}-fast`, 1);
    expect(await waitForState(slow, "DELIVERED", 10_000, t.token)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
    expect(await waitForState(fast, "DELIVERED", 10_000, t.token)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
  });
});
