import { describe, expect, it } from "vitest";
import { api, dbOf, dest, freshTenant, hits, publish, uniqueKey, waitFor, waitForHits } from "./helpers";

async function addEndpoints(token: string, name: string, endpoints: { url?: string; name?: string }[]) {
  return api(`/v2/topics/${name}/endpoints`, { method: "POST", token, body: JSON.stringify({ endpoints }) });
}

describe("URL groups", () => {
  it("manages endpoints (exact {name,url}), fans out with Upstash-Topic-Name, deletes with the last endpoint", async () => {
    const t = await freshTenant();
    const g = uniqueKey("grp");
    const a = uniqueKey("ea");
    const b = uniqueKey("eb");
    expect((await addEndpoints(t.token, g, [{ name: "first", url: dest(`${a}/ok`) }, { url: dest(`${b}/status/500`) }])).status).toBe(200);
    // same URL again: renamed, not duplicated
    await addEndpoints(t.token, g, [{ name: "second", url: dest(`${b}/status/500`) }]);
    const group = await (await api(`/v2/topics/${g}`, { token: t.token })).json<{ name: string; endpoints: unknown[] }>();
    expect(group.endpoints).toEqual([
      { name: "first", url: dest(`${a}/ok`) },
      { name: "second", url: dest(`${b}/status/500`) },
    ]);
    const res = await publish(g, { token: t.token, body: "fan", headers: { "upstash-retries": "0" } });
    expect(res.status).toBe(200);
    const out = await res.json<{ messageId: string; url: string }[]>();
    expect(out.map((o) => o.url)).toEqual([dest(`${a}/ok`), dest(`${b}/status/500`)]);
    const [ha] = await waitForHits(a, 1);
    expect(ha.headers["upstash-topic-name"]).toBe(g);
    const failed = await waitFor("dlq entry", async () => {
      const r = await (await api(`/v2/dlq?topicName=${g}`, { token: t.token })).json<{ messages: Record<string, unknown>[] }>();
      return r.messages[0];
    });
    expect(failed).toMatchObject({ topicName: g, endpointName: "second", messageId: out[1].messageId });
    const logs = await (await api(`/v2/logs?messageId=${out[0].messageId}&state=DELIVERED`, { token: t.token })).json<{ logs: Record<string, unknown>[] }>();
    expect(logs.logs[0]).toMatchObject({ topicName: g, endpointName: "first" });

    expect((await api(`/v2/topics`, { token: t.token })).ok).toBe(true);
    const del = (body: unknown) => api(`/v2/topics/${g}/endpoints`, { method: "DELETE", token: t.token, body: JSON.stringify(body) });
    expect((await del({ endpoints: [{ name: "first" }] })).status).toBe(200);
    expect((await api(`/v2/topics/${g}`, { token: t.token })).status).toBe(200);
    expect((await del({ endpoints: [{ url: dest(`${b}/status/500`) }] })).status).toBe(200);
    expect((await api(`/v2/topics/${g}`, { token: t.token })).status).toBe(404);
    expect((await publish(g, { token: t.token })).status).toBe(404);
  });

  it("refuses bad names and URLs; tenants apart; delete", async () => {
    const t = await freshTenant();
    const other = await freshTenant();
    expect((await addEndpoints(t.token, "bad%20name", [{ url: dest("x/ok") }])).status).toBe(400);
    expect((await addEndpoints(t.token, "g1", [{ url: "ftp://x" }])).status).toBe(400);
    expect((await addEndpoints(t.token, "g1", [{ url: dest("x/ok"), name: "no spaces" }])).status).toBe(400);
    expect((await api(`/v2/topics/g1/endpoints`, { method: "POST", token: t.token, body: "{}" })).status).toBe(400);
    expect((await addEndpoints(t.token, "g1", [{ url: dest("x/ok") }])).status).toBe(200);
    expect((await api(`/v2/topics/g1`, { token: other.token })).status).toBe(404);
    expect((await publish("g1", { token: other.token })).status).toBe(404);
    expect((await api(`/v2/topics/g1`, { method: "DELETE", token: t.token })).status).toBe(200);
    expect((await api(`/v2/topics/g1`, { method: "DELETE", token: t.token })).status).toBe(200); // idempotent
    expect((await api(`/v2/topics/g1`, { token: t.token })).status).toBe(404);
  });
});

describe("batch", () => {
  it("mixes URLs, groups and queues; a bad entry gets its own error and the others go through", async () => {
    const t = await freshTenant();
    const k = uniqueKey("bt");
    const g = uniqueKey("bg");
    await addEndpoints(t.token, g, [{ url: dest(`${k}/ok/group`) }]);
    const res = await api(`/v2/batch`, {
      method: "POST",
      token: t.token,
      body: JSON.stringify([
        { destination: dest(`${k}/ok/url`), body: "1", headers: { "content-type": "text/plain", "upstash-forward-x-b": "y" } },
        { destination: "ftp://nope" },
        { destination: g, body: "2" },
        { destination: dest(`${k}/ok/queue`), queue: uniqueKey("bq"), body: "3" },
        { destination: dest(`${k}/ok/bad`), headers: { "upstash-delay": "forever" } },
      ]),
    });
    expect(res.status).toBe(200);
    const out = await res.json<unknown[]>();
    expect(out[0]).toEqual({ messageId: expect.stringMatching(/^msg_/) });
    expect((out[1] as { error: string }).error).toMatch(/invalid scheme/);
    expect(out[2]).toEqual([{ messageId: expect.stringMatching(/^msg_/), url: dest(`${k}/ok/group`) }]);
    expect(out[3]).toEqual({ messageId: expect.stringMatching(/^msg_/) });
    expect((out[4] as { error: string }).error).toMatch(/Upstash-Delay/);
    const got = await waitForHits(k, 3);
    const url = got.find((h) => h.path.endsWith("/url"))!;
    expect(url.headers["x-b"]).toBe("y");
    expect(url.headers["content-type"]).toBe("text/plain");
    expect((await api(`/v2/batch`, { method: "POST", token: t.token, body: "{}" })).status).toBe(400);
    expect((await api(`/v2/batch`, { method: "POST", token: t.token, body: "[" })).status).toBe(400);
  });
});

describe("batch: entries committed together", () => {
  it("keeps entry order in a queue, dedup semantics and per-entry errors while committing entries together", async () => {
    const t = await freshTenant();
    const k = uniqueKey("bo");
    const q = uniqueKey("boq");
    const dd = uniqueKey("bdd");
    const entries: Record<string, unknown>[] = [];
    for (let i = 0; i < 40; i++) entries.push({ destination: dest(`${k}/ok/q`), queue: q, body: String(i) });
    entries.splice(10, 0, { destination: dest(`${k}/ok/dd`), body: "d1", headers: { "upstash-deduplication-id": dd } });
    entries.splice(20, 0, { destination: dest(`${k}/ok/dd`), body: "d2", headers: { "upstash-deduplication-id": dd } });
    entries.splice(30, 0, { destination: "ftp://nope" });
    for (let i = 0; i < 100; i++) entries.push({ destination: dest(`${k}/ok/plain`), body: `p${i}` });
    const res = await api(`/v2/batch`, { method: "POST", token: t.token, body: JSON.stringify(entries) });
    expect(res.status).toBe(200);
    const out = await res.json<Record<string, unknown>[]>();
    expect(out).toHaveLength(143);
    expect(out[10]).toEqual({ messageId: expect.stringMatching(/^msg_/) });
    expect(out[20]).toEqual({ messageId: out[10].messageId, deduplicated: true });
    expect(String(out[30].error)).toMatch(/invalid scheme/);
    // Every accepted entry is stored by the time the batch answers.
    const ids = out.filter((o) => typeof o.messageId === "string" && !o.deduplicated).map((o) => o.messageId as string);
    expect(ids).toHaveLength(141);
    const stored = await dbOf(t).prepare("SELECT count(*) AS n FROM messages WHERE id IN (SELECT value FROM json_each(?1))")
      .bind(JSON.stringify(ids))
      .first<number>("n");
    expect(stored).toBe(141);
    const got = await waitForHits(k, 141, 20_000);
    const queued = got.filter((h) => h.path.endsWith("/q")).map((h) => Number(h.body && atob(h.body)));
    expect(queued).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(got.filter((h) => h.path.endsWith("/dd"))).toHaveLength(1);
    expect(got.filter((h) => h.path.endsWith("/plain"))).toHaveLength(100);
  });

  it("counts queues created by earlier entries of the same batch against MAX_QUEUES", async () => {
    const t = await freshTenant();
    const k = uniqueKey("bmq");
    const entries = Array.from({ length: 22 }, (_, i) => ({ destination: dest(`${k}/ok`), queue: `${k}-q${i}`, body: String(i) }));
    const res = await api(`/v2/batch`, { method: "POST", token: t.token, body: JSON.stringify(entries) });
    const out = await res.json<Record<string, unknown>[]>();
    // MAX_QUEUES is 20 in the test configuration.
    expect(out.slice(0, 20).every((o) => typeof o.messageId === "string")).toBe(true);
    expect(out.slice(20).map((o) => o.error)).toEqual([expect.stringMatching(/MAX_QUEUES/), expect.stringMatching(/MAX_QUEUES/)]);
    const queues = await (await api(`/v2/queues`, { token: t.token })).json<unknown[]>();
    expect(queues).toHaveLength(20);
  });
});

describe("deduplication", () => {
  it("a repeated id within the window answers 202 with the original id and delivers nothing more", async () => {
    const t = await freshTenant();
    const k = uniqueKey("dd");
    const headers = { "upstash-deduplication-id": "order-42" };
    const first = await publish(dest(`${k}/ok`), { token: t.token, headers });
    expect(first.status).toBe(200);
    const { messageId } = await first.json<{ messageId: string }>();
    const second = await publish(dest(`${k}/ok/other`), { token: t.token, headers });
    expect(second.status).toBe(202);
    expect(await second.json()).toEqual({ messageId, deduplicated: true });
    // another tenant has its own ids
    expect((await publish(dest(`${k}/ok`), { token: (await freshTenant()).token, headers })).status).toBe(200);
    await waitForHits(k, 2);
    await new Promise((r) => setTimeout(r, 300));
    expect((await hits(k)).filter((h) => h.path.endsWith("/other"))).toEqual([]);
  });

  it("content-based: same destination, body and forwarded headers deduplicate; a different body does not", async () => {
    const t = await freshTenant();
    const k = uniqueKey("cd");
    const headers = { "upstash-content-based-deduplication": "true", "upstash-forward-x-a": "1" };
    const a = await publish(dest(`${k}/ok`), { token: t.token, headers, body: "same" });
    const b = await publish(dest(`${k}/ok`), { token: t.token, headers, body: "same" });
    const c = await publish(dest(`${k}/ok`), { token: t.token, headers, body: "different" });
    expect([a.status, b.status, c.status]).toEqual([200, 202, 200]);
    expect((await b.json<{ messageId: string }>()).messageId).toBe((await a.json<{ messageId: string }>()).messageId);
  });

  it("the id is free again once the window has passed", async () => {
    const t = await freshTenant();
    const headers = { "upstash-deduplication-id": "window-edge" };
    expect((await publish(dest("win/ok"), { token: t.token, headers })).status).toBe(200);
    // move the window's end to just past, as if 10 minutes had gone by
    await dbOf(t).prepare("UPDATE dedup SET expires_at = ?2 WHERE tenant_id = ?1").bind(t.tenantId, Date.now() - 1).run();
    expect((await publish(dest("win/ok"), { token: t.token, headers })).status).toBe(200);
    expect((await publish(dest("win/ok"), { token: t.token, headers })).status).toBe(202);
  });
});

describe("flow control", () => {
  it("parallelism is never exceeded and excess messages wait (never rejected)", async () => {
    const t = await freshTenant();
    const k = uniqueKey("fp");
    const key = uniqueKey("fkey");
    for (let i = 0; i < 8; i++) {
      const r = await publish(dest(`${k}/sleep/200`), {
        token: t.token,
        headers: { "upstash-flow-control-key": key, "upstash-flow-control-value": "parallelism=2" },
      });
      expect(r.status).toBe(200);
    }
    const info = await (await api(`/v2/flowControl/${key}`, { token: t.token })).json<Record<string, unknown>>();
    expect(info).toMatchObject({ flowControlKey: key, parallelismMax: 2 });
    expect((info.waitListSize as number) + (info.parallelismCount as number)).toBeGreaterThan(0);
    await waitForHits(k, 8, 20_000);
    await waitFor("all finished", async () => ((await hits(k)).every((h) => (h as unknown as { endTime?: number }).endTime) ? true : undefined));
    const done = (await hits(k)) as unknown as { time: number; endTime: number }[];
    const overlap = Math.max(...done.map((h) => done.filter((o) => o.time <= h.time && o.endTime > h.time).length));
    expect(overlap).toBe(2);
  });

  it("rate per period is honoured", async () => {
    const t = await freshTenant();
    const k = uniqueKey("fr");
    const key = uniqueKey("rkey");
    for (let i = 0; i < 5; i++) {
      await publish(dest(`${k}/ok`), { token: t.token, headers: { "upstash-flow-control-key": key, "upstash-flow-control-value": "rate=2, period=2s" } });
    }
    const got = await waitForHits(k, 5, 15_000);
    const times = got.map((h) => h.time).sort((a, b) => a - b);
    // Two per 2 s period: arrivals come in pairs about 2 s apart. A 1.5 s window leaves room for delivery jitter
    // while still catching a third message let through in the same period.
    for (const start of times) expect(times.filter((x) => x >= start && x < start + 1500).length).toBeLessThanOrEqual(2);
    expect(times[4] - times[0]).toBeGreaterThanOrEqual(3500);
  });

  it("pin, unpin, pause, resume, resetRate, reset; unknown key 404; keys per tenant", async () => {
    const t = await freshTenant();
    const key = uniqueKey("pkey");
    await publish(dest("pin/ok"), { token: t.token, headers: { "upstash-flow-control-key": key, "upstash-flow-control-value": "parallelism=5" } });
    const post = (path: string) => api(`/v2/flowControl/${key}/${path}`, { method: "POST", token: t.token });
    expect((await post("pin?parallelism=3&rate=20&period=120")).status).toBe(200);
    const get = async () => (await api(`/v2/flowControl/${key}`, { token: t.token })).json<Record<string, unknown>>();
    expect(await get()).toMatchObject({ parallelismMax: 3, rateMax: 20, ratePeriod: 120, isPinnedParallelism: true, isPinnedRate: true, rateCount: 0 });
    // a message carrying other values does not change pinned limits
    await publish(dest("pin/ok"), { token: t.token, headers: { "upstash-flow-control-key": key, "upstash-flow-control-value": "parallelism=9" } });
    expect((await get()).parallelismMax).toBe(3);
    expect((await post("unpin?parallelism=true")).status).toBe(200);
    expect(await get()).toMatchObject({ isPinnedParallelism: false, isPinnedRate: true });
    expect((await post("pause")).status).toBe(200);
    expect((await get()).isPaused).toBe(true);
    expect((await post("resume")).status).toBe(200);
    expect((await post("resetRate")).status).toBe(200);
    expect((await post("reset")).status).toBe(200);
    expect((await post("pin?parallelism=abc")).status).toBe(400);
    expect((await api(`/v2/flowControl/nope-${key}`, { token: t.token })).status).toBe(404);
    expect((await api(`/v2/flowControl/${key}`, { token: (await freshTenant()).token })).status).toBe(404);
    const list = await (await api(`/v2/flowControl?search=${key.slice(0, 6)}`, { token: t.token })).json<{ flowControlKey: string }[]>();
    expect(list.map((x) => x.flowControlKey)).toEqual([key]);
    const gp = await (await api(`/v2/globalParallelism`, { token: t.token })).json<Record<string, number>>();
    expect(gp).toEqual({ parallelismMax: 1000, parallelismCount: 0 });
  });
});

describe("labels and redaction", () => {
  it("redacted fields read as REDACTED:<sha256> everywhere while the destination gets the originals", async () => {
    const t = await freshTenant();
    const k = uniqueKey("rd");
    const res = await publish(dest(`${k}/status/500`), {
      token: t.token,
      body: "secret",
      headers: { "upstash-redact-fields": "body, header[X-Secret]", "upstash-forward-x-secret": "s3", "upstash-forward-x-open": "o", "upstash-retries": "0", "upstash-failure-callback": dest(`${k}-cb/ok`) },
    });
    const { messageId } = await res.json<{ messageId: string }>();
    const [hit] = await waitForHits(k, 1);
    expect(atob(hit.body)).toBe("secret");
    expect(hit.headers["x-secret"]).toBe("s3");
    const entry = await waitFor("dlq", async () => (await (await api(`/v2/dlq?messageId=${messageId}`, { token: t.token })).json<{ messages: Record<string, unknown>[] }>()).messages[0]);
    expect(entry.body).toMatch(/^REDACTED:[0-9a-f]{64}$/);
    const header = entry.header as Record<string, string[]>;
    expect(header["X-Secret"][0]).toMatch(/^REDACTED:[0-9a-f]{64}$/);
    expect(header["X-Open"]).toEqual(["o"]);
    const [cb] = await waitForHits(`${k}-cb`, 1);
    const cbBody = JSON.parse(atob(cb.body)) as { sourceBody: string; sourceHeader: Record<string, string[]> };
    expect(atob(cbBody.sourceBody)).toMatch(/^REDACTED:/);
    expect(cbBody.sourceHeader["X-Secret"][0]).toMatch(/^REDACTED:/);
    // a DLQ retry still delivers the original
    await api(`/v2/dlq/retry/${entry.dlqId}`, { method: "POST", token: t.token });
    const again = await waitForHits(k, 2);
    expect(atob(again[1].body)).toBe("secret");
    expect((await publish(dest("x/ok"), { token: t.token, headers: { "upstash-redact-fields": "password" } })).status).toBe(400);
  });
});

describe("batch: headers HTTP cannot carry", () => {
  it("refuses an entry whose forwarded header could never be sent, naming it, and stores nothing for it", async () => {
    const t = await freshTenant();
    const k = uniqueKey("bh");
    const entries = [
      { destination: dest(`${k}/ok/bad-name`), headers: { "upstash-forward-bad name": "x" } },
      { destination: dest(`${k}/ok/bad-value`), headers: { "upstash-forward-x-ok": "a\nb" } },
      { destination: dest(`${k}/ok/bad-callback`), headers: { "upstash-callback": dest(`${k}/ok/cb`), "upstash-callback-forward-x-cb": "a\rb" } },
      { destination: dest(`${k}/ok/bad-type`), headers: { "content-type": "text/plain\u0000" + "x" } },
      { destination: dest(`${k}/ok/fine`), headers: { "upstash-forward-x-ok": "  padded \r\n" } },
    ];
    const res = await api(`/v2/batch`, { method: "POST", token: t.token, body: JSON.stringify(entries) });
    expect(res.status).toBe(200);
    const out = await res.json<{ error?: string; messageId?: string }[]>();
    expect(out[0].error).toMatch(/Upstash-Forward-bad name: "bad name" is not a valid HTTP header name/);
    expect(out[1].error).toMatch(/Upstash-Forward-x-ok: the value of x-ok holds a line break or NUL/);
    expect(out[2].error).toMatch(/Upstash-Callback-Forward-X-Cb: the value of x-cb holds a line break or NUL/);
    expect(out[3].error).toMatch(/Content-Type: the value of content-type holds a line break or NUL/);
    expect(out[4]).toEqual({ messageId: expect.stringMatching(/^msg_/) });
    const stored = await dbOf(t).prepare("SELECT count(*) AS n FROM messages WHERE tenant_id = ?1").bind(t.tenantId).first<number>("n");
    expect(stored).toBe(1);
    // The valid one arrives, its value without the whitespace at its ends.
    const [hit] = await waitForHits(k, 1);
    expect(hit.path.endsWith("/fine")).toBe(true);
    expect(hit.headers["x-ok"]).toBe("padded");
  });
});
