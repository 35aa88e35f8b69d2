// The console's sessions and CSRF checks, through the worker (the browser suite, test/e2e/console.e2e.test.ts,
// drives the pages themselves).
import { SELF } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { csrfToken, sessionCookie } from "../../src/console/session";
import { BASE, DEV_TOKEN, api, freshTenant } from "./helpers";

const cookie = (token: string) => `boomerang_session=${encodeURIComponent(token)}`;

function post(path: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  return SELF.fetch(`${BASE}${path}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(form).toString(),
    redirect: "manual",
  });
}

describe("console sessions", () => {
  it("sends a browser without a session to sign in, and refuses changes and the live tail with 401", async () => {
    const page = await SELF.fetch(`${BASE}/console/logs?state=FAILED`, { redirect: "manual" });
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/console/login?next=%2Fconsole%2Flogs%3Fstate%3DFAILED");
    for (const res of [await SELF.fetch(`${BASE}/console/tail`), await post("/console/keys/rotate", {})]) {
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: "sign in first: no console session" });
    }
    // A cookie with a token that does not resolve is no session either.
    const wrong = await SELF.fetch(`${BASE}/console`, { headers: { cookie: cookie("not-a-token") }, redirect: "manual" });
    expect(wrong.status).toBe(303);
  });

  it("signs in with a token, and only ever sends the browser on to a console page", async () => {
    const ok = await post("/console/login", { token: DEV_TOKEN, next: "/console/dlq?x=1" });
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toBe("/console/dlq?x=1");
    expect(ok.headers.get("set-cookie")).toContain(cookie(DEV_TOKEN));
    for (const next of ["//evil.example/console", "https://evil.example/", "/consoleevil", "/v2/keys", "/console/\\evil"]) {
      const res = await post("/console/login", { token: DEV_TOKEN, next });
      expect(res.headers.get("location"), next).toBe("/console");
    }
    const bad = await post("/console/login", { token: "wrong" });
    expect(bad.status).toBe(401);
    expect(bad.headers.get("set-cookie")).toBeNull();
    const foreign = await post("/console/login", { token: DEV_TOKEN }, { origin: "https://evil.example" });
    expect(foreign.status).toBe(403);
    expect(foreign.headers.get("set-cookie")).toBeNull();
  });

  it("forbids framing and foreign scripts on every page, and refuses an oversized form", async () => {
    for (const path of ["/console/login", "/console", "/console/assets/app.js"]) {
      const res = await SELF.fetch(`${BASE}${path}`, { headers: { cookie: cookie(DEV_TOKEN) }, redirect: "manual" });
      expect(res.headers.get("x-frame-options"), path).toBe("DENY");
      expect(res.headers.get("content-security-policy"), path).toContain("frame-ancestors 'none'");
      expect(res.headers.get("content-security-policy"), path).toContain("script-src 'self';");
    }
    const big = await post("/console/publish", { _csrf: "x", body: "a".repeat(25 * 1024 * 1024) }, { cookie: cookie(DEV_TOKEN) });
    expect(big.status).toBe(413);
  });

  it("marks the cookie Secure everywhere but plain HTTP on a loopback address", () => {
    expect(sessionCookie("http://127.0.0.1:8080/console/login", "t")).toBe("boomerang_session=t; Path=/console; HttpOnly; SameSite=Strict; Max-Age=43200");
    expect(sessionCookie("http://localhost:8080/console/login", "t")).not.toContain("Secure");
    expect(sessionCookie("https://q.example.com/console/login", "t")).toContain("; Secure");
    expect(sessionCookie("http://q.example.com/console/login", "t")).toContain("; Secure");
    expect(sessionCookie("https://q.example.com/console/logout", null)).toContain("boomerang_session=; ");
    expect(sessionCookie("https://q.example.com/console/logout", null)).toContain("Max-Age=0");
  });

  it("refuses a change without the session's CSRF value, or from another origin, and changes nothing", async () => {
    const t = await freshTenant();
    const keys = async () => (await api("/v2/keys", { token: t.token })).json<{ current: string; next: string }>();
    const before = await keys();
    const csrf = await csrfToken(t.token);
    const mine = { cookie: cookie(t.token) };
    const attempts = [
      await post("/console/keys/rotate", {}, mine),
      await post("/console/keys/rotate", { _csrf: "x".repeat(csrf.length) }, mine),
      await post("/console/keys/rotate", { _csrf: csrf }, { ...mine, origin: "http://evil.example" }),
      await post("/console/keys/rotate", { _csrf: csrf }, { ...mine, origin: "null" }),
      await post("/console/keys/rotate", { _csrf: csrf }, { ...mine, referer: "http://evil.example/page" }),
      // Another tenant's CSRF value does not fit this session.
      await post("/console/keys/rotate", { _csrf: await csrfToken(DEV_TOKEN) }, mine),
    ];
    for (const res of attempts) {
      expect(res.status).toBe(403);
      expect(await res.text()).toContain("Refused (CSRF check)");
    }
    expect(await keys()).toEqual(before);
    const log = vi.spyOn(console, "log");
    try {
      const done = await post("/console/keys/rotate", { _csrf: csrf }, { ...mine, origin: BASE });
      expect(done.status).toBe(303);
      expect((await keys()).current).toBe(before.next);
      // The change is in the audit log like an API call, marked as made in the console.
      const lines = log.mock.calls.map((c) => String(c[0])).filter((l) => l.includes('"audit"'));
      expect(lines.map((l) => JSON.parse(l))).toContainEqual({ audit: "POST /v2/keys/rotate", via: "console", tenant: t.tenantId, status: 200 });
    } finally {
      log.mockRestore();
    }
  });

  it("answers the cron preview with the API's own complaint", async () => {
    const headers = { cookie: cookie(DEV_TOKEN) };
    const good = await SELF.fetch(`${BASE}/console/cron?expr=${encodeURIComponent("CRON_TZ=America/New_York 0 4 * * *")}`, { headers });
    expect(good.status).toBe(200);
    const body = await good.json<{ words: string; next: string[] }>();
    expect(body.words).toBe("At 04:00 (America/New_York)");
    expect(body.next).toHaveLength(5);
    const bad = await SELF.fetch(`${BASE}/console/cron?expr=${encodeURIComponent("0 4 * *")}`, { headers });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'Upstash-Cron: "0 4 * *" has 4 field(s); use five: minute hour day-of-month month day-of-week' });
  });
});
