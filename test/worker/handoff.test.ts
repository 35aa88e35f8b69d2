// Nothing accepted answers 5xx: once D1 has committed a publish, a failed hand-off to the queue is left to the
// sweeper, and the client still gets its message id.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { requestConfig } from "../../src/core/spec";
import { publishMessage } from "../../src/delivery/publish";
import { sweepAll } from "../../src/delivery/sweeper";
import type { Env } from "../../src/env";
import { dest, failingQueue, freshTenant, hits, uniqueKey, waitForHits } from "./helpers";

/** The real bindings, with the deliveries queue failing every send. */
function queueDown(): Env {
  return { ...(env as Env), DELIVERIES: failingQueue };
}

describe("a hand-off that fails after the commit", () => {
  it("still answers the message id, and the sweeper delivers the stored message", async () => {
    const key = uniqueKey("hof");
    const t = await freshTenant(0);
    const now = Date.now();
    const out = await publishMessage(
      queueDown(),
      { tenantId: t.tenantId, destination: dest(`${key}/ok`), cfg: requestConfig(new Headers(), null), body: new Uint8Array(), callerIp: null, queueName: null },
      now,
    );
    expect(out.status).toBe(200);
    const { messageId } = out.body as { messageId: string };
    const row = await env.DB.prepare("SELECT state, finished_at FROM messages WHERE id = ?1").bind(messageId).first();
    expect(row).toEqual({ state: "CREATED", finished_at: null });
    await new Promise((r) => setTimeout(r, 300));
    expect(await hits(key)).toEqual([]);
    // The next sweep, once the message is 15 s past due, hands it on.
    await sweepAll(env as Env, now + 16_000, { pruneBudgetMs: 0 });
    await waitForHits(key, 1);
  });
});
