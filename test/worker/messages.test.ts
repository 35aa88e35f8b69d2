import { describe, expect, it } from "vitest";
import { api, dest, freshTenant, hits, publishOk, states, uniqueKey } from "./helpers";

describe("/v2/messages", () => {
  it("cancels a delayed message: 200 {cancelled:1}, CANCEL_REQUESTED then CANCELED, never delivered", async () => {
    const key = uniqueKey();
    const id = await publishOk(dest(`${key}/ok`), { headers: { "upstash-delay": "1s" } });
    expect((await api(`/v2/messages/${id}`)).status).toBe(200);
    const res = await api(`/v2/messages/${id}`, { method: "DELETE" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ cancelled: 1 });
    expect(await states(id)).toEqual(["CREATED", "CANCEL_REQUESTED", "CANCELED"]);
    expect((await api(`/v2/messages/${id}`)).status).toBe(404);
    expect((await api(`/v2/messages/${id}`, { method: "DELETE" })).status).toBe(404);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await hits(key)).toEqual([]);
  });

  it("cancels a message waiting for a retry", async () => {
    const key = uniqueKey();
    const id = await publishOk(dest(`${key}/status/500`), { headers: { "upstash-retry-delay": "1500" } });
    await new Promise((r) => setTimeout(r, 400));
    expect((await hits(key)).length).toBe(1);
    expect((await api(`/v2/messages/${id}`, { method: "DELETE" })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1800));
    expect((await hits(key)).length).toBe(1);
    expect((await states(id)).slice(-2)).toEqual(["CANCEL_REQUESTED", "CANCELED"]);
  });

  it("bulk-cancels by filter and by ids; unknown filter → 400; messages of other tenants untouched", async () => {
    const other = await freshTenant();
    const label = uniqueKey("lbl");
    const mine = [
      await publishOk(dest("bulk/ok"), { headers: { "upstash-delay": "1h", "upstash-label": label } }),
      await publishOk(dest("bulk/ok"), { headers: { "upstash-delay": "1h", "upstash-label": label } }),
    ];
    const unlabelled = await publishOk(dest("bulk/ok"), { headers: { "upstash-delay": "1h" } });
    const theirs = await publishOk(dest("bulk/ok"), { token: other.token, headers: { "upstash-delay": "1h", "upstash-label": label } });

    const typo = await api(`/v2/messages?labeel=${label}`, { method: "DELETE" });
    expect(typo.status).toBe(400);
    expect((await typo.json<{ error: string }>()).error).toMatch(/labeel/);
    expect((await api(`/v2/messages?label=`, { method: "DELETE" })).status).toBe(400);

    const res = await api(`/v2/messages?label=${label}&count=100`, { method: "DELETE" });
    expect(await res.json()).toEqual({ cancelled: 2 });
    for (const id of mine) expect((await api(`/v2/messages/${id}`)).status).toBe(404);
    expect((await api(`/v2/messages/${unlabelled}`)).status).toBe(200);
    expect((await api(`/v2/messages/${theirs}`, { token: other.token })).status).toBe(200);

    const byId = await api(`/v2/messages?messageIds=${unlabelled}&messageIds=${theirs}`, { method: "DELETE" });
    expect(await byId.json()).toEqual({ cancelled: 1 });
    expect((await api(`/v2/messages/${theirs}`, { token: other.token })).status).toBe(200);
  });

  it("with no filter cancels every pending message of the tenant, in pages of count", async () => {
    const t = await freshTenant();
    for (let i = 0; i < 3; i++) await publishOk(dest("all/ok"), { token: t.token, headers: { "upstash-delay": "1h" } });
    expect(await (await api(`/v2/messages?count=2`, { method: "DELETE", token: t.token })).json()).toEqual({ cancelled: 2 });
    expect(await (await api(`/v2/messages?count=2`, { method: "DELETE", token: t.token })).json()).toEqual({ cancelled: 1 });
    expect(await (await api(`/v2/messages`, { method: "DELETE", token: t.token })).json()).toEqual({ cancelled: 0 });
  });

  it("an empty id segment never reaches the bulk endpoint", async () => {
    expect((await api(`/v2/messages/`, { method: "DELETE" })).status).toBe(404);
  });
});
