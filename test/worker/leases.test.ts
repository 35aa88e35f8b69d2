// Exactly one outcome per attempt: an attempt whose lease was lost (it ran out and another attempt claimed the
// message) records nothing, and two concurrent DLQ retries of one entry produce one message.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { type Dlq, api, dest, hits, publishOk, states, uniqueKey, waitFor, waitForHits } from "./helpers";

/**
 * Waits until a message's running attempt holds a lease (an attempt whose claim wrote nothing takes one after
 * LEASE_AFTER_MS), forces that lease to have run out, and hands the id to the queue again.
 */
async function expireLeaseAndRedeliver(id: string): Promise<void> {
  await waitFor("the running attempt's lease", async () =>
    (await env.DB.prepare("SELECT lease_until FROM messages WHERE id = ?1").bind(id).first<number | null>("lease_until")) !== null,
  );
  const { meta } = await env.DB.prepare("UPDATE messages SET lease_until = 1 WHERE id = ?1 AND finished_at IS NULL").bind(id).run();
  expect(meta.changes).toBe(1);
  await env.DELIVERIES.send({ ids: [id] });
}

async function dlqOf(messageId: string): Promise<Dlq["messages"]> {
  const res = await api(`/v2/dlq?messageId=${messageId}`);
  return (await res.json<Dlq>()).messages;
}

describe("outcomes guarded by the lease", () => {
  it("a failed attempt that lost its lease adds no second DLQ entry and no second failure callback", async () => {
    const key = uniqueKey("lost");
    const cbKey = uniqueKey("lostcb");
    const id = await publishOk(dest(`${key}/sleep-fail/1500`), {
      headers: { "upstash-retries": "0", "upstash-failure-callback": dest(`${cbKey}/ok`) },
    });
    // The first attempt is under way; its lease runs out (forced) and a second attempt claims the message.
    await waitForHits(key, 1);
    await expireLeaseAndRedeliver(id);
    await waitForHits(key, 2);
    // Both attempts answer 500 with no retries left: only the one that holds the lease ends the message.
    await waitForHits(cbKey, 1, 10_000);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await hits(key)).length).toBe(2);
    expect((await hits(cbKey)).length).toBe(1);
    expect((await dlqOf(id)).length).toBe(1);
    const log = await states(id);
    expect(log.filter((s) => s === "FAILED")).toEqual(["FAILED"]);
    expect(log.filter((s) => s === "ACTIVE").length).toBe(2);
  });

  it("a success that lost its lease is not recorded over the attempt that holds it", async () => {
    const key = uniqueKey("lostok");
    const cbKey = uniqueKey("lostokcb");
    // The first attempt succeeds slowly; the second (after the forced expiry) fails and schedules a retry.
    const id = await publishOk(dest(`${key}/sleep/1500`), { headers: { "upstash-retries": "0", "upstash-callback": dest(`${cbKey}/ok`) } });
    await waitForHits(key, 1);
    await expireLeaseAndRedeliver(id);
    await waitForHits(key, 2);
    await waitForHits(cbKey, 1, 10_000);
    await new Promise((r) => setTimeout(r, 2500));
    // Two attempts, one outcome: one DELIVERED entry and one callback.
    expect((await hits(key)).length).toBe(2);
    expect((await hits(cbKey)).length).toBe(1);
    expect((await states(id)).filter((s) => s === "DELIVERED")).toEqual(["DELIVERED"]);
    const row = await env.DB.prepare("SELECT state, lease_until FROM messages WHERE id = ?1").bind(id).first();
    expect(row).toEqual({ state: "DELIVERED", lease_until: null });
  });

  it("two concurrent retries of one DLQ entry deliver one message", async () => {
    const key = uniqueKey("dlqrace");
    const id = await publishOk(dest(`${key}/status/500`), { headers: { "upstash-retries": "0" } });
    const [entry] = await waitFor("the DLQ entry", async () => {
      const list = await dlqOf(id);
      return list.length ? list : undefined;
    });
    const dlqId = String(entry.dlqId);
    const [a, b] = await Promise.all([
      api(`/v2/dlq/retry/${dlqId}`, { method: "POST" }),
      api(`/v2/dlq/retry/${dlqId}`, { method: "POST" }),
    ]);
    const answers = await Promise.all(
      [a, b].map(async (r) => ({ status: r.status, body: await r.json<{ messageId?: string; error?: string }>() })),
    );
    // Whichever came second either found the entry gone (404) or retried the same message (same id).
    const retried = answers.filter((x) => x.status === 201).map((x) => x.body.messageId);
    expect(retried.length).toBeGreaterThanOrEqual(1);
    expect(new Set(retried).size).toBe(1);
    for (const x of answers) expect([201, 404]).toContain(x.status);
    await waitForHits(key, 2);
    await new Promise((r) => setTimeout(r, 1500));
    // The original attempt, then one retry.
    expect((await hits(key)).length).toBe(2);
  });
});
