// Gates do no network I/O while holding their lock: a failed hand-off neither fails the call that admitted the
// messages nor resets the object; it stays in the gate's outbox and the alarm hands it off later.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { DeliveryTask, Env } from "../../src/env";
import { gateName, gateStub } from "../../src/objects/gate";
import { api, dest, failingQueue, freshTenant, hits, uniqueKey, waitForHits } from "./helpers";

describe("gate hand-offs", () => {
  it("a failed hand-off leaves the gate working and is retried by its alarm", async () => {
    const t = await freshTenant();
    const key = uniqueKey("gio");
    const q = uniqueKey("gq");
    await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: q, parallelism: 5, paused: true }) });
    for (let i = 0; i < 3; i++) {
      const res = await api(`/v2/enqueue/${q}/${dest(`${key}/ok`)}`, { method: "POST", token: t.token, body: String(i) });
      expect(res.status).toBe(200);
    }
    const gate = gateStub(env as Env, gateName("queue", t.tenantId, q));
    // The deliveries queue fails for this gate (injected into the live object).
    let realQueue: Queue<DeliveryTask> | undefined;
    await runInDurableObject(gate, (instance: unknown) => {
      const o = instance as { env: Env };
      realQueue = o.env.DELIVERIES;
      o.env = { ...o.env, DELIVERIES: failingQueue };
    });
    // Resuming admits all three: the call succeeds although their hand-off failed, and the gate still answers.
    await gate.configure({ paused: false });
    const [a, b] = await Promise.all([gate.info(), gate.info()]);
    expect(a).toEqual(b);
    expect(a.waiting).toBe(0);
    expect(a.inflight).toBe(3);
    await new Promise((r) => setTimeout(r, 300));
    expect(await hits(key)).toEqual([]);
    // The queue is back; the alarm hands the three off.
    await runInDurableObject(gate, (instance: unknown) => {
      const o = instance as { env: Env };
      o.env = { ...o.env, DELIVERIES: realQueue! };
    });
    expect(await runDurableObjectAlarm(gate)).toBe(true);
    await waitForHits(key, 3);
  });
});
