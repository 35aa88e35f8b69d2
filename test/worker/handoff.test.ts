// Nothing accepted answers 5xx: once D1 has committed a publish, a failed hand-off to the queue is left to the
// sweeper, and the client still gets its message id.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { requestConfig } from "../../src/core/spec";
import { publishMessage } from "../../src/delivery/publish";
import { sweepAll } from "../../src/delivery/sweeper";
import type { Env } from "../../src/env";
import type { DeliveryTask } from "../../src/env";
import { dest, failingQueue, freshTenant, hits, uniqueKey, waitForHits } from "./helpers";

/** The real deliveries queue, each send held until `release()`; `sent()` counts the sends that went through. */
function heldQueue() {
  const real = (env as Env).DELIVERIES;
  let release!: () => void;
  const open = new Promise<void>((r) => (release = r));
  let sent = 0;
  const queue = {
    send: async (body: DeliveryTask, options?: QueueSendOptions) => {
      await open;
      sent += 1;
      return real.send(body, options);
    },
    sendBatch: async (messages: Iterable<MessageSendRequest<DeliveryTask>>, options?: QueueSendBatchOptions) => {
      await open;
      sent += 1;
      return real.sendBatch(messages, options);
    },
  } as unknown as Queue<DeliveryTask>;
  return { queue, release, sent: () => sent };
}

/** A waitUntil that keeps what it was given, and tells whether all of it has settled. */
function keeper() {
  const kept: Promise<unknown>[] = [];
  let settled = 0;
  return {
    waitUntil: (p: Promise<unknown>) => kept.push(p.finally(() => (settled += 1))),
    pending: () => kept.length - settled,
    all: () => Promise.allSettled(kept),
  };
}

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

describe("a publish with its request's waitUntil", () => {
  it("is answered once stored, before its id reaches the queue; the request lives on until it does", async () => {
    const key = uniqueKey("hol");
    const t = await freshTenant(0);
    const held = heldQueue();
    const k = keeper();
    const out = await publishMessage(
      { ...(env as Env), DELIVERIES: held.queue },
      { tenantId: t.tenantId, destination: dest(`${key}/ok`), cfg: requestConfig(new Headers(), null), body: new Uint8Array(), callerIp: null, queueName: null, waitUntil: k.waitUntil },
      Date.now(),
    );
    expect(out.status).toBe(200);
    const { messageId } = out.body as { messageId: string };
    expect(await env.DB.prepare("SELECT state FROM messages WHERE id = ?1").bind(messageId).first("state")).toBe("CREATED");
    // Answered, and the send still waits: the request's waitUntil holds it.
    await new Promise((r) => setTimeout(r, 100));
    expect(held.sent()).toBe(0);
    expect(k.pending()).toBeGreaterThan(0);
    held.release();
    await k.all();
    expect(held.sent()).toBe(1);
    await waitForHits(key, 1);
  });

  it("whose send fails after the answer is marked for the sweeper, which delivers it", async () => {
    const key = uniqueKey("hof2");
    const t = await freshTenant(0);
    const k = keeper();
    const now = Date.now();
    const out = await publishMessage(
      queueDown(),
      { tenantId: t.tenantId, destination: dest(`${key}/ok`), cfg: requestConfig(new Headers(), null), body: new Uint8Array(), callerIp: null, queueName: null, waitUntil: k.waitUntil },
      now,
    );
    expect(out.status).toBe(200);
    const { messageId } = out.body as { messageId: string };
    await k.all();
    const row = await env.DB.prepare("SELECT state, watch, finished_at FROM messages WHERE id = ?1").bind(messageId).first();
    expect(row).toEqual({ state: "CREATED", watch: 1, finished_at: null });
    expect(await hits(key)).toEqual([]);
    await sweepAll(env as Env, now + 16_000, { pruneBudgetMs: 0 });
    await waitForHits(key, 1);
  });
});
