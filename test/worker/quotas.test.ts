// Quotas: a daily message quota per tenant (429 with RateLimit-*) and a burst limit on management calls (429 with
// Burst-RateLimit-*), both off by default in dev mode.
import { createExecutionContext, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import worker from "../../src/index";
import { BASE, api, dest, freshTenant, uniqueKey } from "./helpers";

/** The worker with quotas on (the tests' configuration has them off, as `npm run dev` does). */
function call(vars: Partial<Env>, path: string, init: RequestInit & { token: string }): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${init.token}`);
  const request = new Request(`${BASE}${path}`, { ...init, headers }) as Request<unknown, IncomingRequestCfProperties>;
  return worker.fetch(request, { ...(env as Env), ...vars }, createExecutionContext());
}

describe("daily message quota", () => {
  it("answers 429 with RateLimit-* once a tenant's messages of the day reach the quota, counting fan-out and batches", async () => {
    const t = await freshTenant();
    const vars = { DAILY_MESSAGE_QUOTA: "5" };
    const url = dest(`${uniqueKey("q")}/ok`);
    const ok = await call(vars, `/v2/publish/${url}`, { method: "POST", token: t.token, headers: { "upstash-delay": "1h" } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("RateLimit-Limit")).toBeNull();
    // A batch of 3 entries: 4 of 5 used.
    const batch = await call(vars, `/v2/batch`, {
      method: "POST",
      token: t.token,
      body: JSON.stringify([1, 2, 3].map(() => ({ destination: url, headers: { "Upstash-Delay": "1h" } }))),
    });
    expect(batch.status).toBe(200);
    // A URL group of 2 endpoints is 2 messages: 4 + 2 > 5.
    const group = uniqueKey("g");
    await api(`/v2/topics/${group}/endpoints`, { method: "POST", token: t.token, body: JSON.stringify({ endpoints: [{ url }, { url: `${url}/2` }] }) });
    const over = await call(vars, `/v2/publish/${group}`, { method: "POST", token: t.token, headers: { "upstash-delay": "1h" } });
    expect(over.status).toBe(429);
    expect(over.headers.get("RateLimit-Limit")).toBe("5");
    expect(over.headers.get("RateLimit-Remaining")).toBe("1");
    const reset = Number(over.headers.get("RateLimit-Reset"));
    expect(reset).toBe((Math.floor(Date.now() / 86_400_000) + 1) * 86_400);
    expect((await over.json<{ error: string }>()).error).toContain("DAILY_MESSAGE_QUOTA");
    // One more single message fits; then nothing does, and a whole batch is refused with 429.
    expect((await call(vars, `/v2/publish/${url}`, { method: "POST", token: t.token, headers: { "upstash-delay": "1h" } })).status).toBe(200);
    const full = await call(vars, `/v2/batch`, { method: "POST", token: t.token, body: JSON.stringify([{ destination: url }]) });
    expect(full.status).toBe(429);
    expect(full.headers.get("RateLimit-Remaining")).toBe("0");
    // Nothing over the quota was stored: 5 messages in all.
    const logs = await (await api(`/v2/logs?state=CREATED&count=100`, { token: t.token })).json<{ logs: unknown[] }>();
    expect(logs.logs.length).toBe(5);
    // Another tenant has its own count.
    const other = await freshTenant();
    expect((await call(vars, `/v2/publish/${url}`, { method: "POST", token: other.token, headers: { "upstash-delay": "1h" } })).status).toBe(200);
  });
});

describe("burst limit on management calls", () => {
  it("answers 429 with Burst-RateLimit-* past BURST_RPS calls in one second; publishes are not burst-limited", async () => {
    const t = await freshTenant();
    const vars = { BURST_RPS: "3" };
    // Wait for the start of a second, so that the calls below fall into one window.
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await call(vars, `/v2/queues`, { method: "GET", token: t.token }));
    const statuses = answers.map((r) => r.status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect(answers[0].headers.get("Burst-RateLimit-Limit")).toBe("3");
    expect(answers[0].headers.get("Burst-RateLimit-Remaining")).toBe("2");
    const limited = answers[3];
    expect(limited.headers.get("Burst-RateLimit-Limit")).toBe("3");
    expect(limited.headers.get("Burst-RateLimit-Remaining")).toBe("0");
    expect(Number(limited.headers.get("Burst-RateLimit-Reset"))).toBe(Math.floor(Date.now() / 1000) + 1);
    expect(limited.headers.get("RateLimit-Limit")).toBeNull(); // not the daily-quota variant
    expect((await limited.json<{ error: string }>()).error).toContain("BURST_RPS");
    // Publishing is never burst-limited.
    for (let i = 0; i < 5; i++) {
      const res = await call(vars, `/v2/publish/${dest(`${uniqueKey("b")}/ok`)}`, { method: "POST", token: t.token, headers: { "upstash-delay": "1h" } });
      expect(res.status).toBe(200);
    }
    // Another tenant is not affected.
    const other = await freshTenant();
    expect((await call(vars, `/v2/queues`, { method: "GET", token: other.token })).status).toBe(200);
  });
});
