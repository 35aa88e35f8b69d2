import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { newMessage } from "../../src/core/message";
import { prepareAccept, statementsOf } from "../../src/delivery/accept";
import { getPendingMessage, insertMessage, insertMessages } from "../../src/db/messages";
import type { Env } from "../../src/env";
import { api, dbOf, dest, freshTenant, plainSpec, publish, publishOk, uniqueKey, waitForHits } from "./helpers";

async function countMessages(): Promise<number> {
  return Number(await env.DB.prepare("SELECT count(*) AS n FROM messages").first("n"));
}

async function expect400(res: Response, pattern: RegExp): Promise<void> {
  const text = await res.text();
  expect(res.status, text).toBe(400);
  expect(res.headers.get("content-type")).toContain("application/json");
  expect((JSON.parse(text) as { error: string }).error).toMatch(pattern);
}

describe("POST /v2/publish", () => {
  it("stores the message with its configuration and answers with only the id", async () => {
    const key = uniqueKey();
    const res = await publish(dest(`${key}/ok`), {
      body: "payload",
      headers: {
        "content-type": "text/plain",
        "upstash-method": "PUT",
        "upstash-retries": "2",
        "upstash-retry-delay": "1000 * (1 + retried)",
        "upstash-timeout": "5s",
        "upstash-delay": "1h",
        "upstash-forward-x-one": "1",
        "Upstash-Forward-X-Two": "2",
        "upstash-label": "a,b",
        "upstash-callback": "http://127.0.0.1:1/cb?x=1",
        "upstash-failure-callback": "http://127.0.0.1:1/fcb",
      },
    });
    expect(res.status).toBe(200);
    const body = await res.json<{ messageId: string }>();
    expect(Object.keys(body)).toEqual(["messageId"]);
    expect(body.messageId).toMatch(/^msg_/);
    const got = await (await api(`/v2/messages/${body.messageId}`)).json<Record<string, unknown>>();
    expect(got).toMatchObject({
      messageId: body.messageId,
      url: dest(`${key}/ok`),
      method: "PUT",
      header: { "Content-Type": ["text/plain"], "X-One": ["1"], "X-Two": ["2"] },
      body: "payload",
      maxRetries: 2,
      retryDelayExpression: "1000 * (1 + retried)",
      callback: "http://127.0.0.1:1/cb?x=1",
      failureCallback: "http://127.0.0.1:1/fcb",
      label: "a",
      labels: ["a", "b"],
    });
    expect(got.notBefore as number).toBeGreaterThan(Date.now() + 3_500_000);
  });

  it("takes configuration from the query string, keeps the destination's own query, header wins", async () => {
    const key = uniqueKey();
    const res = await api(
      `/v2/publish/${dest(`${key}/ok`)}?a=1&upstash-retries=1&b=two&upstash-method=PATCH&upstash-forward-x-q=9`,
      { method: "POST", headers: { "upstash-method": "DELETE" } },
    );
    expect(res.status).toBe(200);
    const { messageId } = await res.json<{ messageId: string }>();
    const [hit] = await waitForHits(key, 1);
    expect(hit.url).toBe(`/${key}/ok?a=1&b=two`);
    expect(hit.method).toBe("DELETE");
    expect(hit.headers["x-q"]).toBe("9");
    const row = await env.DB.prepare("SELECT url, max_retries FROM messages WHERE id = ?1").bind(messageId).first();
    expect(row).toEqual({ url: dest(`${key}/ok?a=1&b=two`), max_retries: 1 });
  });

  it("passes a binary body byte for byte and never invents a content type", async () => {
    const key = uniqueKey();
    const bytes = new Uint8Array([0, 255, 128, 10, 13, 0]);
    await publishOk(dest(`${key}/ok`), { body: bytes });
    const [hit] = await waitForHits(key, 1);
    expect([...Uint8Array.from(atob(hit.body), (c) => c.charCodeAt(0))]).toEqual([...bytes]);
    expect(hit.headers["content-type"]).toBeUndefined();
  });

  it("forwards every request header with Upstash-Header-Forward, but never Authorization", async () => {
    const key = uniqueKey();
    await publishOk(dest(`${key}/ok`), {
      headers: { "upstash-header-forward": "true", "x-hook": "yes", "content-type": "application/json" },
      body: "{}",
    });
    const [hit] = await waitForHits(key, 1);
    expect(hit.headers["x-hook"]).toBe("yes");
    expect(hit.headers["content-type"]).toBe("application/json");
    expect(hit.headers.authorization).toBeUndefined();
    expect(hit.headers["upstash-header-forward"]).toBeUndefined();
  });

  it("repairs a collapsed scheme", async () => {
    const key = uniqueKey();
    const url = dest(`${key}/ok`).replace("http://", "http:/");
    await publishOk(url);
    await waitForHits(key, 1);
  });

  const bad: [string, Record<string, string>, RegExp][] = [
    ["method", { "upstash-method": "TRACE" }, /Upstash-Method.*TRACE/],
    ["delay", { "upstash-delay": "soon" }, /Upstash-Delay/],
    ["delay over the maximum", { "upstash-delay": "400d" }, /Upstash-Delay.*exceeds the maximum/],
    ["retries", { "upstash-retries": "-1" }, /Upstash-Retries/],
    ["retry delay", { "upstash-retry-delay": "eval(1)" }, /Upstash-Retry-Delay/],
    ["timeout", { "upstash-timeout": "1h" }, /Upstash-Timeout.*exceeds the maximum/],
    ["not-before in ms", { "upstash-not-before": String(Date.now()) }, /milliseconds/],
    ["callback url", { "upstash-callback": "ftp://x" }, /Upstash-Callback/],
    ["failure callback url", { "upstash-failure-callback": "not a url" }, /Upstash-Failure-Callback/],
    ["callback setting", { "upstash-callback-retries": "many" }, /Upstash-Callback-Retries/],
    ["unknown callback setting", { "upstash-callback-colour": "red" }, /Upstash-Callback-Colour/],
    ["flow control", { "upstash-flow-control-key": "k", "upstash-flow-control-value": "rate=1,period=9d" }, /period/],
    ["flow control name", { "upstash-flow-control-key": "k", "upstash-flow-control-value": "speed=3" }, /unknown name "speed"/],
    ["label", { "upstash-label": "a,,b" }, /Upstash-Label/],
    ["unknown header", { "upstash-retires": "3" }, /upstash-retires/],
  ];
  for (const [name, headers, pattern] of bad) {
    it(`refuses an invalid ${name} with a 400 naming it, storing nothing`, async () => {
      const before = await countMessages();
      await expect400(await publish(dest("bad/ok"), { headers }), pattern);
      expect(await countMessages()).toBe(before);
    });
  }

  it("refuses invalid destinations", async () => {
    await expect400(await publish("ftp://example.com"), /invalid destination url: endpoint has invalid scheme/);
    await expect400(await publish("not a name!"), /invalid scheme/);
    await expect400(await publish("http://"), /invalid destination url/);
  });

  it("answers 404 for an unknown URL group", async () => {
    const res = await publish("no-such-group");
    expect(res.status).toBe(404);
    expect((await res.json<{ error: string }>()).error).toMatch(/no-such-group/);
  });

  it("refuses a body over the maximum with 413 and stores nothing", async () => {
    const before = await countMessages();
    const res = await publish(dest("big/ok"), { body: new Uint8Array(10 * 1024 * 1024 + 1) });
    expect(res.status).toBe(413);
    expect((await res.json<{ error: string }>()).error).toMatch(/exceeds the maximum message size/);
    expect(await countMessages()).toBe(before);
  });

  it("answers a wrong method with 405 JSON and an unknown path with 404 JSON", async () => {
    const r405 = await api(`/v2/publish/${dest("x/ok")}`, { method: "GET" });
    expect(r405.status).toBe(405);
    expect(await r405.json()).toHaveProperty("error");
    const r404 = await api("/v2/nothing-here");
    expect(r404.status).toBe(404);
    expect(await r404.json()).toHaveProperty("error");
  });
});

describe("concurrent publishes (group commit)", () => {
  it("stores, logs and delivers each of many concurrent publishes exactly once, deduplicated ones included", async () => {
    const key = uniqueKey("group");
    const dedupId = uniqueKey("dd");
    const plain = Array.from({ length: 30 }, (_, i) =>
      publish(dest(`${key}/ok?n=${i}`), { body: `body ${i}` }).then(async (r) => {
        expect(r.status).toBe(200);
        return (await r.json<{ messageId: string }>()).messageId;
      }),
    );
    // Dedup publishes commit on their own, next to the shared commits: one is stored, the others answer 202.
    const deduped = Array.from({ length: 4 }, () =>
      publish(dest(`${key}/ok?n=dedup`), { body: "dedup", headers: { "upstash-deduplication-id": dedupId } }),
    );
    const ids = await Promise.all(plain);
    const dedupStatuses = (await Promise.all(deduped)).map((r) => r.status).sort();
    expect(dedupStatuses).toEqual([200, 202, 202, 202]);
    expect(new Set(ids).size).toBe(30);

    const stored = await env.DB.prepare(
      `SELECT m.id, (SELECT count(*) FROM json_each(m.log) e WHERE e.value ->> '$.s' = 'CREATED') AS created
         FROM messages m WHERE m.url LIKE ?1`,
    )
      .bind(`%/${key}/%`)
      .all<{ id: string; created: number }>();
    expect(stored.results.length).toBe(31);
    expect(stored.results.every((r) => r.created === 1)).toBe(true);

    const got = await waitForHits(key, 31);
    const perQuery = new Map<string, number>();
    for (const h of got) perQuery.set(h.url, (perQuery.get(h.url) ?? 0) + 1);
    expect([...perQuery.values()].every((n) => n === 1)).toBe(true);
    expect(new Set(got.map((h) => h.headers["upstash-message-id"])).size).toBe(31);
    for (const id of ids) expect(got.some((h) => h.headers["upstash-message-id"] === id)).toBe(true);
  });
});

describe("the statements of a group commit (statementsOf)", () => {
  it("writes the rows of consecutive plain publishes with one INSERT, and keeps statements that go before an item in their place", async () => {
    const t = await freshTenant();
    const db = dbOf(t);
    const e = { ...(env as Env), DB: db };
    const now = Date.now();
    const make = (n: number) =>
      Array.from({ length: n }, (_, i) => newMessage(plainSpec, { tenantId: t.tenantId, url: dest(`soc/${i}`), body: new TextEncoder().encode(`b${i}`), callerIp: null, shard: t.shard }, now));
    const [a, b, c, d] = [make(1), make(2), make(1), make(3)];
    // c needs its own row to be preceded by a statement that can see a's and b's rows, and not c's or d's.
    const seen = db.prepare("INSERT INTO sweeper_state (name, value) VALUES (?1, (SELECT count(*) FROM messages WHERE tenant_id = ?2))").bind(`soc-${t.tenantId}`, t.tenantId);
    const items = [prepareAccept(e, a, now), prepareAccept(e, b, now), prepareAccept(e, c, now, [seen]), prepareAccept(e, d, now)];
    const plainOnly = statementsOf([items[0], items[1], items[3]]);
    expect(plainOnly).toHaveLength(1);
    const stmts = statementsOf(items);
    expect(stmts).toHaveLength(3); // a+b, c's statement, c+d
    await db.batch(stmts);
    const ids = [...a, ...b, ...c, ...d].map((m) => m.id);
    const rows = await db.prepare("SELECT id FROM messages WHERE id IN (SELECT value FROM json_each(?1))").bind(JSON.stringify(ids)).all<{ id: string }>();
    expect(rows.results.map((r) => r.id).sort()).toEqual([...ids].sort());
    const count = await db.prepare("SELECT value FROM sweeper_state WHERE name = ?1").bind(`soc-${t.tenantId}`).first<number>("value");
    expect(Number(count)).toBe(3);
  });
});

describe("the rows of many messages (insertMessages)", () => {
  it("binds at most 100 rows to a statement and stores every field as given", async () => {
    const t = await freshTenant();
    const db = dbOf(t);
    const now = Date.now();
    const spec = { ...plainSpec, headers: { "Content-Type": ["text/plain"], "X-Quote": ['say "hi", \\ and \u00e9'] }, maxRetries: 2 };
    const every = Uint8Array.from({ length: 256 }, (_, b) => b);
    const bodyOf = (i: number) => (i === 99 ? every : new Uint8Array([i & 0xff, 0, 0xff, 10]));
    const ms = Array.from({ length: 250 }, (_, i) =>
      newMessage(spec, { tenantId: t.tenantId, url: dest(`rows/${i}?q=${i}`), body: bodyOf(i), callerIp: "10.0.0.1", shard: t.shard }, now),
    );
    const stmts = insertMessages(db, ms);
    expect(stmts.map((x) => (x as unknown as { params: unknown[] }).params.length)).toEqual([100, 100, 50]);
    await db.batch(stmts);
    for (const i of [0, 99, 100, 249]) {
      const got = await getPendingMessage(db, t.tenantId, ms[i].id);
      expect(got).toMatchObject({ id: ms[i].id, url: ms[i].url, headers: spec.headers, maxRetries: 2, callerIp: "10.0.0.1" });
      expect([...got!.body]).toEqual([...bodyOf(i)]);
    }
    // A body whose hex would pass D1's 2 MB cap on a value (inline only when INLINE_BODY_MAX is raised; a callback
    // carrying a large answer, written by insertMessage) is read as a BLOB, and comes back whole.
    const big = Uint8Array.from({ length: 1_200_000 }, (_, i) => (i * 7) & 0xff);
    const large = newMessage(spec, { tenantId: t.tenantId, url: dest("rows/big"), body: big, callerIp: null, shard: t.shard }, now);
    await db.batch([insertMessage(db, large)]);
    const gotLarge = await getPendingMessage(db, t.tenantId, large.id);
    expect(gotLarge!.body.length).toBe(big.length);
    expect(gotLarge!.body.every((b, i) => b === big[i])).toBe(true);
    await db.prepare("DELETE FROM messages WHERE id = ?1").bind(large.id).run();
    // Replayed, the same statements change nothing.
    await db.batch(insertMessages(db, ms));
    const n = await db.prepare("SELECT count(*) AS n FROM messages WHERE tenant_id = ?1").bind(t.tenantId).first<number>("n");
    expect(n).toBe(250);
  });
});

describe("the caller's address (Upstash-Caller-Ip)", () => {
  /** Publishes with `vars` over the test environment's settings; returns the message's view. */
  async function publishWith(vars: Record<string, string>, headers: Record<string, string>): Promise<Record<string, unknown>> {
    const messageId = await publishOk(dest(`${uniqueKey("ip")}/ok`), { body: "x", headers, vars, settle: true });
    return (await api(`/v2/messages/${messageId}`)).json<Record<string, unknown>>();
  }

  it("is CF-Connecting-IP when sent, else LOCAL_CALLER_IP (npm start on a loopback address), else not recorded", async () => {
    expect((await publishWith({ LOCAL_CALLER_IP: "127.0.0.1" }, { "cf-connecting-ip": "203.0.113.9" })).callerIp).toBe("203.0.113.9");
    expect((await publishWith({ LOCAL_CALLER_IP: "127.0.0.1" }, {})).callerIp).toBe("127.0.0.1");
    expect((await publishWith({}, {})).callerIp).toBeUndefined();
  });
});
