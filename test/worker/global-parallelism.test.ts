// GLOBAL_PARALLELISM, enforced per tenant: a claim takes attempt slots from the tenant's Limiter object; ids over
// the limit are not claimed (no ACTIVE entry) but go back to the queue, and finished attempts give their slots back.
import { createMessageBatch, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { consumeBatch } from "../../src/delivery/consumer";
import type { DeliveryTask, Env } from "../../src/env";
import { limiterStub } from "../../src/objects/limiter";
import { dbOf, dest, freshTenant, hits, publish, states, uniqueKey, makeDue } from "./helpers";

describe("global parallelism per tenant", () => {
  it("attempts at most GLOBAL_PARALLELISM of a tenant's messages at once; the others wait unclaimed", async () => {
    const t = await freshTenant();
    const key = uniqueKey("gp");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await publish(dest(`${key}/sleep/400`), { token: t.token, headers: { "upstash-delay": "1h" }, body: String(i) });
      ids.push((await res.json<{ messageId: string }>()).messageId);
    }
    await makeDue(dbOf(t), ids);
    const limited = { ...(env as Env), GLOBAL_PARALLELISM: "2", ENFORCE_GLOBAL_PARALLELISM: "true" };
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: "p", timestamp: new Date(), attempts: 1, body: { ids } }]);
    await consumeBatch(batch, limited);
    // Two were attempted and recorded; three were not claimed at all.
    const logged = await Promise.all(ids.map((id) => states(id, t.token)));
    expect(logged.filter((l) => l.includes("DELIVERED")).length).toBe(2);
    expect(logged.filter((l) => l.length === 1 && l[0] === "CREATED").length).toBe(3);
    const got = await hits(key);
    expect(got.length).toBe(2);
    // The slots were given back: the next claim may take two more.
    expect(await limiterStub(limited, t.tenantId).acquire(2, ["probe-1", "probe-2"], Date.now() + 1000)).toEqual(["probe-1", "probe-2"]);
    await limiterStub(limited, t.tenantId).release(["probe-1", "probe-2"]);
  });

  it("another tenant is not held back by one at its limit", async () => {
    const a = await freshTenant();
    const b = await freshTenant();
    const limited = { ...(env as Env), GLOBAL_PARALLELISM: "1", ENFORCE_GLOBAL_PARALLELISM: "true" };
    // Tenant A's only slot is taken by an attempt under way elsewhere.
    expect(await limiterStub(limited, a.tenantId).acquire(1, ["elsewhere"], Date.now() + 60_000)).toEqual(["elsewhere"]);
    const keyA = uniqueKey("gpa");
    const keyB = uniqueKey("gpb");
    const ra = await publish(dest(`${keyA}/ok`), { token: a.token, headers: { "upstash-delay": "1h" } });
    const rb = await publish(dest(`${keyB}/ok`), { token: b.token, headers: { "upstash-delay": "1h" } });
    const idA = (await ra.json<{ messageId: string }>()).messageId;
    const idB = (await rb.json<{ messageId: string }>()).messageId;
    for (const [t, id] of [[a, idA], [b, idB]] as const) {
      await makeDue(dbOf(t), [id]);
    }
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: "p", timestamp: new Date(), attempts: 1, body: { ids: [idA, idB] } }]);
    await consumeBatch(batch, limited);
    expect(await states(idB, b.token)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
    expect(await states(idA, a.token)).toEqual(["CREATED"]);
    await limiterStub(limited, a.tenantId).release(["elsewhere"]);
  });
});
