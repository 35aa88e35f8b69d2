import { env } from "cloudflare:test";
import { jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { api, dest, hits, publishOk, refusedUrl, states, uniqueKey, waitFor, waitForHits } from "./helpers";

const KEY = new TextEncoder().encode("sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r");
type Body = Record<string, unknown>;
const json = (b64: string): Body => JSON.parse(atob(b64)) as Body;

describe("callbacks", () => {
  it("posts one callback per attempt with every contract field, signed for the callback URL", async () => {
    const key = uniqueKey("cb");
    const cbKey = uniqueKey("cbr");
    const cbUrl = dest(`${cbKey}/ok?via=cb`);
    const src = await publishOk(dest(`${key}/flaky/1`), {
      body: "source body",
      headers: {
        "content-type": "text/plain",
        "upstash-forward-x-src": "1",
        "upstash-callback": cbUrl,
        "upstash-retries": "2",
        "upstash-retry-delay": "50",
      },
    });
    const cbs = await waitForHits(cbKey, 2);
    const bodies = cbs.map((h) => json(h.body)).sort((a, b) => Number(a.retried) - Number(b.retried));
    const created = Number(bodies[0].createdAt);
    expect(bodies[0]).toEqual({
      status: 500,
      header: expect.objectContaining({ "Content-Type": ["text/plain"] }),
      body: btoa("not yet"),
      retried: 0,
      maxRetries: 2,
      sourceMessageId: src,
      url: dest(`${key}/flaky/1`),
      method: "POST",
      sourceHeader: { "Content-Type": ["text/plain"], "X-Src": ["1"] },
      sourceBody: btoa("source body"),
      notBefore: created,
      createdAt: created,
    });
    expect(bodies[1]).toMatchObject({ status: 200, body: btoa("finally"), retried: 1, sourceMessageId: src });
    for (const h of cbs) {
      expect(h.method).toBe("POST");
      expect(h.headers["content-type"]).toBe("application/json");
      expect(h.headers["upstash-message-id"]).not.toBe(src);
      expect(h.headers["upstash-retried"]).toBe("0");
      const { payload } = await jwtVerify(h.headers["upstash-signature"], KEY, { issuer: "Upstash" });
      expect(payload.sub).toBe(cbUrl);
    }
    // the callback messages are ordinary logged messages
    const cbId = cbs[0].headers["upstash-message-id"];
    await waitFor("callback delivered", async () => ((await states(cbId)).includes("DELIVERED") ? true : undefined));
    expect((await states(cbId))[0]).toBe("CREATED");
  });

  it("failure callback once, after the DLQ entry, with its dlqId; callback and failure callback together", async () => {
    const key = uniqueKey("fc");
    const cbKey = uniqueKey("fcb");
    const src = await publishOk(dest(`${key}/status/502`), {
      body: "x",
      headers: {
        "upstash-callback": dest(`${cbKey}/ok/cb`),
        "upstash-failure-callback": dest(`${cbKey}/ok/failure`),
        "upstash-retries": "1",
        "upstash-retry-delay": "50",
      },
    });
    await waitFor("3 callback hits", async () => ((await hits(cbKey)).length >= 3 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    const all = await hits(cbKey);
    const failure = all.filter((h) => h.path.endsWith("/failure"));
    const per = all.filter((h) => h.path.endsWith("/cb"));
    expect(per.length).toBe(2);
    expect(failure.length).toBe(1);
    const fb = json(failure[0].body);
    expect(fb).toMatchObject({ status: 502, body: btoa("status 502"), retried: 1, maxRetries: 1, sourceMessageId: src });
    const entry = await api(`/v2/dlq/${fb.dlqId}`);
    expect(entry.status).toBe(200);
    expect(await entry.json()).toMatchObject({ messageId: src, responseStatus: 502 });
  });

  it("no response: status 0, empty header and body, and an error text", async () => {
    const cbKey = uniqueKey("nr");
    await publishOk(refusedUrl(), { headers: { "upstash-retries": "0", "upstash-failure-callback": dest(`${cbKey}/ok`) } });
    const [h] = await waitForHits(cbKey, 1);
    const b = json(h.body);
    expect(b).toMatchObject({ status: 0, header: {}, body: "" });
    expect(b.error).toMatch(/no response/);
  });

  it("the 489 path fires the failure callback after one attempt", async () => {
    const key = uniqueKey("nrt");
    const cbKey = uniqueKey("nrtc");
    await publishOk(dest(`${key}/nonretryable`), { headers: { "upstash-retries": "3", "upstash-failure-callback": dest(`${cbKey}/ok`) } });
    const [h] = await waitForHits(cbKey, 1);
    expect(json(h.body)).toMatchObject({ status: 489, retried: 0, maxRetries: 3 });
    expect((await hits(key)).length).toBe(1);
  });

  it("callback configuration: method, forwarded headers, retries into the DLQ; no callback of a callback", async () => {
    const key = uniqueKey("cfg");
    const cbKey = uniqueKey("cfgc");
    const src = await publishOk(dest(`${key}/ok`), {
      headers: {
        "upstash-callback": dest(`${cbKey}/status/500`),
        "upstash-callback-method": "PUT",
        "upstash-callback-forward-x-token": "abc",
        "upstash-callback-retries": "1",
        "upstash-callback-retry-delay": "50",
      },
    });
    const got = await waitForHits(cbKey, 2);
    expect(got.map((h) => [h.method, h.headers["x-token"], h.headers["upstash-retried"]])).toEqual([
      ["PUT", "abc", "0"],
      ["PUT", "abc", "1"],
    ]);
    const cbId = got[0].headers["upstash-message-id"];
    const entry = await waitFor("callback in DLQ", async () => {
      const r = await (await api(`/v2/dlq?messageId=${cbId}`)).json<{ messages: Body[] }>();
      return r.messages[0];
    });
    expect(entry).toMatchObject({ messageId: cbId, method: "PUT", responseStatus: 500 });
    await new Promise((r) => setTimeout(r, 300));
    expect((await hits(cbKey)).length).toBe(2);
    const row = await env.DB.prepare("SELECT kind, parent_id, callback, failure_callback FROM messages WHERE id = ?1").bind(cbId).first();
    expect(row).toEqual({ kind: "callback", parent_id: src, callback: null, failure_callback: null });
    const logs = await (await api(`/v2/logs?messageId=${src}&state=DELIVERED`)).json<{ logs: Body[] }>();
    expect(logs.logs[0].callbackHeaders).toEqual({ "X-Token": ["abc"] });
  });

  it("a delayed callback waits in the scheduler", async () => {
    const key = uniqueKey("dl");
    const cbKey = uniqueKey("dlc");
    await publishOk(dest(`${key}/ok`), { headers: { "upstash-callback": dest(`${cbKey}/ok`), "upstash-callback-delay": "1s" } });
    const [d] = await waitForHits(key, 1);
    const [c] = await waitForHits(cbKey, 1, 5000);
    expect(c.time - d.time).toBeGreaterThanOrEqual(950);
  });

  it("truncates the destination's response body at the maximum message size and says so", async () => {
    const key = uniqueKey("big");
    const cbKey = uniqueKey("bigc");
    const max = 10 * 1024 * 1024; // MAX_MESSAGE_SIZE's default
    await publishOk(dest(`${key}/big/${max + 24}`), { headers: { "upstash-callback": dest(`${cbKey}/ok`) } });
    const [h] = await waitForHits(cbKey, 1, 30_000);
    const b = json(h.body);
    expect(atob(b.body as string).length).toBe(max);
    expect(b.bodyTruncated).toBe(true);
  });

  it("base64-encodes binary response bodies", async () => {
    const key = uniqueKey("bin");
    const cbKey = uniqueKey("binc");
    await publishOk(dest(`${key}/binary`), { headers: { "upstash-callback": dest(`${cbKey}/ok`) } });
    const [h] = await waitForHits(cbKey, 1);
    const b = json(h.body);
    expect(b.status).toBe(201);
    expect(b.body).toBe(btoa(String.fromCharCode(0xff, 0xfe, 0x00, 0x01, 0x80)));
    expect((b.header as Record<string, string[]>)["X-Custom"]).toEqual(["yes"]);
  });

  it("cancelled messages fire no callbacks", async () => {
    const cbKey = uniqueKey("cc");
    const id = await publishOk(dest(`${cbKey}-dest/ok`), {
      headers: { "upstash-delay": "1s", "upstash-callback": dest(`${cbKey}/ok`), "upstash-failure-callback": dest(`${cbKey}/ok`) },
    });
    await api(`/v2/messages/${id}`, { method: "DELETE" });
    await new Promise((r) => setTimeout(r, 1500));
    expect(await hits(cbKey)).toEqual([]);
  });
});
