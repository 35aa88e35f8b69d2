import { describe, expect, it } from "vitest";
import { api, dest, freshTenant, publishOk, uniqueKey, waitForState } from "./helpers";

type Logs = { logs: Record<string, unknown>[]; cursor?: string };

describe("logs", () => {
  it("serves /v2/events and /v2/logs with the same entries under their own key, newest first", async () => {
    const t = await freshTenant();
    const id = await publishOk(dest(`${uniqueKey()}/ok`), { token: t.token, body: "b", headers: { "upstash-label": "x" } });
    await waitForState(id, "DELIVERED", 10_000, t.token);
    const events = await (await api(`/v2/events`, { token: t.token })).json<{ events: Record<string, unknown>[] }>();
    const logs = await (await api(`/v2/logs`, { token: t.token })).json<Logs>();
    expect(events.events).toEqual(logs.logs);
    expect(logs.logs.map((l) => l.state)).toEqual(["DELIVERED", "ACTIVE", "CREATED"]);
    expect(logs.logs[0]).toMatchObject({ messageId: id, body: btoa("b"), responseStatus: 200, label: "x", labels: ["x"], maxRetries: 3 });
    expect("cursor" in logs).toBe(false);
  });

  it("pages with a cursor and filters by state (IN_PROGRESS, both cancel spellings), ignoring unknown keys", async () => {
    const t = await freshTenant();
    const a = await publishOk(dest("lg/ok"), { token: t.token, headers: { "upstash-delay": "1h" } });
    await api(`/v2/messages/${a}`, { method: "DELETE", token: t.token });
    const p1 = await (await api(`/v2/logs?count=2`, { token: t.token })).json<Logs>();
    expect(p1.logs.length).toBe(2);
    const p2 = await (await api(`/v2/logs?count=2&cursor=${p1.cursor}`, { token: t.token })).json<Logs>();
    expect(p2.logs.map((l) => l.state)).toEqual(["CREATED"]);
    expect("cursor" in p2).toBe(false);
    for (const s of ["CANCELED", "CANCELLED"]) {
      const r = await (await api(`/v2/logs?state=${s}&whatever=1`, { token: t.token })).json<Logs>();
      expect(r.logs.map((l) => l.state)).toEqual(["CANCELED"]);
    }
    const created = await (await api(`/v2/logs?state=CREATED`, { token: t.token })).json<Logs>();
    expect(created.logs[0].nextDeliveryTime as number).toBeGreaterThan(Date.now() + 3_000_000);
    const inProgress = await (await api(`/v2/logs?state=IN_PROGRESS`, { token: t.token })).json<Logs>();
    expect(inProgress.logs).toEqual([]);
  });
});

describe("signing keys", () => {
  it("dev tenant 1 has the fixed pair the SDK dev-mode hook expects", async () => {
    const res = await api(`/v2/keys`);
    expect(await res.json()).toEqual({ current: "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r", next: "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs" });
  });

  it("rotation makes next current and a fresh next, per tenant", async () => {
    const t = await freshTenant();
    const rotated = await (await api(`/v2/keys/rotate`, { method: "POST", token: t.token })).json<{ current: string; next: string }>();
    expect(rotated.current).toBe(t.nextSigningKey);
    expect(rotated.next).toMatch(/^sig_[1-9A-HJ-NP-Za-km-z]{28}$/);
    expect(await (await api(`/v2/keys`, { token: t.token })).json()).toEqual(rotated);
  });
});
