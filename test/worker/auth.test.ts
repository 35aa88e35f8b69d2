import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BASE, DEV_TOKEN, api, dest, freshTenant, publishOk, waitFor } from "./helpers";

describe("authentication and tenancy", () => {
  it("401 JSON without a token or with a wrong one", async () => {
    for (const token of [null, "wrong"]) {
      const res = await api(`/v2/messages/msg_x`, { token });
      expect(res.status).toBe(401);
      expect(res.headers.get("content-type")).toContain("application/json");
      expect(await res.json()).toEqual({ error: "Unauthorized" });
    }
  });

  it("accepts Bearer in any case, a bare token and ?qstash_token= (stripped from the destination)", async () => {
    for (const authorization of [`bearer ${DEV_TOKEN}`, `BEARER ${DEV_TOKEN}`, DEV_TOKEN]) {
      expect((await SELF.fetch(`${BASE}/v2/keys`, { headers: { authorization } })).status).toBe(200);
    }
    const res = await SELF.fetch(`${BASE}/v2/publish/${dest("qt/ok")}?keep=1&qstash_token=${encodeURIComponent(DEV_TOKEN)}`, {
      method: "POST",
    });
    expect(res.status).toBe(200);
    const { messageId } = await res.json<{ messageId: string }>();
    const logs = await (await api(`/v2/logs?messageId=${messageId}`)).json<{ logs: { url: string }[] }>();
    expect(logs.logs[0].url).toBe(dest("qt/ok?keep=1"));
  });

  it("read-only tokens read but get 403 on every mutation", async () => {
    const t = await freshTenant();
    const id = await publishOk(dest("ro/ok"), { token: t.token, headers: { "upstash-delay": "1h" } });
    const ro = t.readOnlyToken;
    expect((await api(`/v2/messages/${id}`, { token: ro })).status).toBe(200);
    expect((await api(`/v2/dlq`, { token: ro })).status).toBe(200);
    expect((await api(`/v2/logs`, { token: ro })).status).toBe(200);
    expect((await api(`/v2/keys`, { token: ro })).status).toBe(200);
    const mutations: [string, string][] = [
      ["POST", `/v2/publish/${dest("ro/ok")}`],
      ["DELETE", `/v2/messages/${id}`],
      ["DELETE", `/v2/messages`],
      ["DELETE", `/v2/dlq`],
      ["POST", `/v2/dlq/retry`],
      ["POST", `/v2/keys/rotate`],
    ];
    for (const [method, path] of mutations) {
      const res = await api(path, { method, token: ro });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect((await res.json<{ error: string }>()).error).toMatch(/read-only/);
    }
    expect((await api(`/v2/messages/${id}`, { token: t.token })).status).toBe(200);
  });

  it("no tenant reaches another's messages, logs, DLQ or keys", async () => {
    const a = await freshTenant();
    const b = await freshTenant();
    const pending = await publishOk(dest("iso/ok"), { token: a.token, headers: { "upstash-delay": "1h" } });
    const failed = await publishOk(dest("iso/status/500"), { token: a.token, headers: { "upstash-retries": "0" } });
    const entry = await waitFor("dlq", async () => (await (await api(`/v2/dlq`, { token: a.token })).json<{ messages: { dlqId: string }[] }>()).messages[0]);
    expect((await api(`/v2/messages/${pending}`, { token: b.token })).status).toBe(404);
    expect((await api(`/v2/messages/${pending}`, { method: "DELETE", token: b.token })).status).toBe(404);
    expect((await api(`/v2/dlq/${entry.dlqId}`, { token: b.token })).status).toBe(404);
    expect((await api(`/v2/dlq/${entry.dlqId}`, { method: "DELETE", token: b.token })).status).toBe(404);
    expect((await api(`/v2/dlq/retry/${entry.dlqId}`, { method: "POST", token: b.token })).status).toBe(404);
    const listB = await (await api(`/v2/dlq`, { token: b.token })).text();
    const logsB = await (await api(`/v2/logs?messageId=${failed}`, { token: b.token })).text();
    for (const text of [listB, logsB]) {
      expect(text).not.toContain(pending);
      expect(text).not.toContain(failed);
    }
    const keysB = await (await api(`/v2/keys`, { token: b.token })).json<{ current: string }>();
    expect(keysB.current).toBe(b.currentSigningKey);
    expect(keysB.current).not.toBe(a.currentSigningKey);
    expect((await api(`/v2/messages/${pending}`, { token: a.token })).status).toBe(200);
  });

  it("admin API: refuses without the secret, creates tenants and tokens with it", async () => {
    expect((await SELF.fetch(`${BASE}/admin/tenants`, { method: "POST" })).status).toBe(401);
    expect((await SELF.fetch(`${BASE}/admin/tenants`, { method: "POST", headers: { authorization: "Bearer nope" } })).status).toBe(401);
    const admin = { authorization: "Bearer test-admin-secret", "content-type": "application/json" };
    const created = await SELF.fetch(`${BASE}/admin/tenants`, { method: "POST", headers: admin, body: JSON.stringify({ name: "acme" }) });
    expect(created.status).toBe(201);
    const t = await created.json<{ tenantId: string; token: string; readOnlyToken: string }>();
    expect((await api(`/v2/keys`, { token: t.token })).status).toBe(200);
    const tok = await SELF.fetch(`${BASE}/admin/tenants/${t.tenantId}/tokens`, { method: "POST", headers: admin, body: "{}" });
    expect(tok.status).toBe(201);
    expect((await api(`/v2/keys`, { token: (await tok.json<{ token: string }>()).token })).status).toBe(200);
    const missing = await SELF.fetch(`${BASE}/admin/tenants/nope/tokens`, { method: "POST", headers: admin, body: "{}" });
    expect(missing.status).toBe(404);
    const bad = await SELF.fetch(`${BASE}/admin/tenants`, { method: "POST", headers: admin, body: "[1" });
    expect(bad.status).toBe(400);
  });
});
