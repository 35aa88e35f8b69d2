// PATCH /v2/topics/{name}: default configuration and forward headers merged under every publish to the group.
import { describe, expect, it } from "vitest";
import { api, dest, freshTenant, hits, uniqueKey, waitFor, waitForHits } from "./helpers";

async function group(token: string, name: string, urls: string[]) {
  const res = await api(`/v2/topics/${name}/endpoints`, {
    method: "POST",
    token,
    body: JSON.stringify({ endpoints: urls.map((url) => ({ url })) }),
  });
  expect(res.status).toBe(200);
}

const patch = (token: string, name: string, body: unknown) =>
  api(`/v2/topics/${name}`, { method: "PATCH", token, body: typeof body === "string" ? body : JSON.stringify(body) });

describe("URL group default headers", () => {
  it("merges the group's headers under each publish; the publish's own headers win", async () => {
    const t = await freshTenant();
    const key = uniqueKey("gd");
    const name = uniqueKey("grp");
    await group(t.token, name, [dest(`${key}/ok/a`), dest(`${key}/ok/b`)]);
    const res = await patch(t.token, name, {
      headers: { "Upstash-Header-Forward": ["true"], "Upstash-Forward-X-Team": "group", "Upstash-Forward-X-Only-Group": ["a", "b"] },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
    // The group's shape is unchanged: exactly name, createdAt, updatedAt and endpoints.
    const shown = await (await api(`/v2/topics/${name}`, { token: t.token })).json<Record<string, unknown>>();
    expect(Object.keys(shown).sort()).toEqual(["createdAt", "endpoints", "name", "updatedAt"]);

    const pub = await api(`/v2/publish/${name}`, {
      method: "POST",
      token: t.token,
      headers: { "x-webhook-event": "push", "upstash-forward-x-team": "mine" },
      body: "hi",
    });
    expect(pub.status).toBe(200);
    const got = await waitForHits(key, 2);
    for (const h of got) {
      expect(h.headers["x-webhook-event"]).toBe("push"); // Upstash-Header-Forward from the group
      expect(h.headers["x-team"]).toBe("mine"); // the publish wins
      expect(h.headers["x-only-group"]).toBe("a, b");
    }
  });

  it("applies group retries, and an empty headers object clears the defaults", async () => {
    const t = await freshTenant();
    const key = uniqueKey("gr");
    const name = uniqueKey("grp");
    await group(t.token, name, [dest(`${key}/status/500`)]);
    expect((await patch(t.token, name, { headers: { "Upstash-Retries": "0" } })).status).toBe(200);
    const first = await (await api(`/v2/publish/${name}`, { method: "POST", token: t.token })).json<{ messageId: string }[]>();
    await waitFor("the DLQ entry", async () => {
      const r = await (await api(`/v2/dlq?messageId=${first[0].messageId}`, { token: t.token })).json<{ messages: unknown[] }>();
      return r.messages.length ? true : undefined;
    });
    expect((await hits(key)).length).toBe(1); // no retries: one attempt

    expect((await patch(t.token, name, { headers: {} })).status).toBe(200);
    const second = await (await api(`/v2/publish/${name}`, { method: "POST", token: t.token })).json<{ messageId: string }[]>();
    const msg = await (await api(`/v2/messages/${second[0].messageId}`, { token: t.token })).json<{ maxRetries?: number }>();
    expect(msg.maxRetries).toBe(3); // the default again
  });

  it("refuses bad input with a 400 that changes nothing, and an unknown group with a 404", async () => {
    const t = await freshTenant();
    const name = uniqueKey("grp");
    expect((await patch(t.token, name, { headers: { "Upstash-Retries": "1" } })).status).toBe(404);
    await group(t.token, name, [dest(`${uniqueKey("x")}/ok`)]);
    expect((await patch(t.token, name, { headers: { "Upstash-Retries": "2" } })).status).toBe(200);
    for (const bad of [
      "not json",
      [],
      {},
      { headers: [] },
      { headers: { "Upstash-Retries": "many" } },
      { headers: { Authorization: "Bearer x" } },
      { headers: { "Upstash-Cron": "* * * * *" } },
      { headers: { "Upstash-Retries": 3 } },
      { headers: { "Upstash-Retries": [] } },
      { headers: { "Upstash-Delay": "1x" } },
      { headers: {}, extra: 1 },
    ]) {
      const res = await patch(t.token, name, bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(typeof (await res.json<{ error: string }>()).error).toBe("string");
    }
    // Still the last good defaults: two retries.
    const pub = await (await api(`/v2/publish/${name}`, { method: "POST", token: t.token, headers: { "upstash-delay": "1h" } })).json<{ messageId: string }[]>();
    const msg = await (await api(`/v2/messages/${pub[0].messageId}`, { token: t.token })).json<{ maxRetries?: number }>();
    expect(msg.maxRetries).toBe(2);
  });
});
