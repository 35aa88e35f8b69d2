// The attempt relay (scripts/relay.mjs, the worker's side in src/delivery/relay.ts): `npm start` runs it as a Node
// process and binds it as RELAY. Here the global setup runs it the same way (test/support/global-setup.ts), the
// worker reaches it over 127.0.0.1, and the calls it makes reach the real test destination.
import { createMessageBatch, env } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import { attempt, type Outgoing, type Reply, send } from "../../src/delivery/attempt";
import { consumeBatch } from "../../src/delivery/consumer";
import { RELAY_MIN_BATCH, RELAY_SECRET_HEADER, RelayBatch } from "../../src/delivery/relay";
import { settings } from "../../src/config";
import type { DeliveryTask, Env } from "../../src/env";
import type { StoredMessage } from "../../src/core/types";
import { counting, dbOf, dest, freshTenant, hits, uniqueKey, waitForHits, waitForState, dueButUnsent } from "./helpers";

const SECRET = "test-relay-secret";
/** The relay as the RELAY binding of `npm start` reaches it: whatever the URL, the request goes to its socket. */
const loop = {
  fetch: (_input: RequestInfo | URL, init?: RequestInit) => fetch(`http://${inject("relayAddress")}/`, init),
} as Fetcher;

/** `n` messages of a fresh tenant to the test destination under a new key, due now and not yet sent. */
async function dueMessages(label: string, n: number) {
  const t = await freshTenant();
  const key = uniqueKey(label);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await dueButUnsent(dest(`${key}/ok`), { tenant: t }));
  return { t, key, ids };
}

/** Consumes one pack of `ids` as the worker would with a relay bound; returns how many requests reached the relay. */
async function consumeWithRelay(ids: string[]): Promise<number> {
  const { binding: relay, requests } = counting(loop);
  const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: "pack", timestamp: new Date(), attempts: 1, body: { ids } }]);
  await consumeBatch(batch, { ...(env as Env), RELAY: relay, RELAY_SECRET: SECRET });
  return requests();
}

function call(url: string, over: Partial<Outgoing> = {}): Outgoing {
  return { url, method: "POST", headers: [["content-type", "text/plain"], ["x-test", "relayed"]], body: new TextEncoder().encode("the body"), timeoutMs: 5000, limit: 1 << 20, ...over };
}

const text = (r: Reply) => ("failed" in r ? `failed: ${r.failed}` : new TextDecoder().decode(r.body));

describe("the attempt relay", () => {
  it("refuses a request without its secret, and calls nothing", async () => {
    const key = uniqueKey("relay-secret");
    const line = `${JSON.stringify({ ...call(dest(`${key}/ok`)), body: null })}\n`;
    for (const headers of [{}, { [RELAY_SECRET_HEADER]: "wrong" }] as Record<string, string>[]) {
      const res = await loop.fetch("http://relay/", { method: "POST", headers, body: line });
      expect(res.status).toBe(403);
      expect((await res.json<{ error: string }>()).error).toMatch(/only serves the worker that started it/);
    }
    const bad = await loop.fetch("http://relay/", { method: "POST", headers: { [RELAY_SECRET_HEADER]: SECRET }, body: "not json\n" });
    expect(bad.status).toBe(400);
    expect((await bad.json<{ error: string }>()).error).toMatch(/one JSON call per line/);
    expect(await hits(key)).toHaveLength(0);
  });

  it("makes a batch's calls in one request and answers each as it comes: a slow destination holds up no other", async () => {
    const key = uniqueKey("relay-batch");
    const { binding: relay, requests } = counting(loop);
    const batch = new RelayBatch(relay, SECRET);
    const started = Date.now();
    const slow = batch.send(call(dest(`${key}/sleep/1500`)));
    const fast = batch.send(call(dest(`${key}/binary`)));
    const failing = batch.send(call(dest(`${key}/status/503`), { method: "PUT" }));
    const fastReply = await fast;
    const fastAt = Date.now() - started;
    expect(fastAt).toBeLessThan(1000);
    expect(fastReply).toMatchObject({ status: 201, truncated: false });
    if ("failed" in fastReply) throw new Error("no answer");
    expect([...fastReply.body]).toEqual([0xff, 0xfe, 0x00, 0x01, 0x80]);
    expect(fastReply.headers["X-Custom"]).toEqual(["yes"]);
    expect(await failing).toMatchObject({ status: 503 });
    expect(text(await slow)).toBe("slept");
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    expect(requests()).toBe(1);
    // The destination got each request as built: method, headers and body.
    const got = await waitForHits(key, 3);
    const put = got.find((h) => h.path.endsWith("/status/503"))!;
    expect(put.method).toBe("PUT");
    expect(put.headers["x-test"]).toBe("relayed");
    expect(atob(put.body)).toBe("the body");
  });

  it("keeps each call's time limit and the cap on an answer's body", async () => {
    const key = uniqueKey("relay-limits");
    const batch = new RelayBatch(loop, SECRET);
    const [late, big] = await Promise.all([
      batch.send(call(dest(`${key}/sleep/2000`), { timeoutMs: 300 })),
      batch.send(call(dest(`${key}/big/5000`), { limit: 1000, method: "GET", body: null })),
    ]);
    expect(late).toMatchObject({ timedOut: true });
    expect(big).toMatchObject({ status: 200, truncated: true });
    if (!("failed" in big)) expect(big.body.length).toBe(1000);
  });

  it("makes the calls it did not answer directly when the relay fails", async () => {
    const key = uniqueKey("relay-down");
    const down = { fetch: async () => new Response("gone", { status: 502 }) } as unknown as Fetcher;
    const thrown = { fetch: async () => Promise.reject(new Error("connection refused")) } as unknown as Fetcher;
    for (const relay of [down, thrown, loop]) {
      const secret = relay === loop ? "not the secret" : SECRET; // the real relay refuses it: 403
      const reply = await new RelayBatch(relay, secret).send(call(dest(`${key}/ok`)));
      expect(text(reply)).toBe("ok");
    }
    expect(await waitForHits(key, 3)).toHaveLength(3);
  });

  it("gives an attempt the same result as a call from the worker itself", async () => {
    const key = uniqueKey("relay-same");
    const s = settings(env as Env);
    const m = {
      id: "msg_relay_same",
      url: dest(`${key}/nonretryable`),
      method: "POST",
      headers: { "Content-Type": ["text/plain"] },
      body: new TextEncoder().encode("x"),
      retried: 0,
      timeoutMs: null,
      topicName: null,
      scheduleId: null,
      callerIp: null,
    } as unknown as StoredMessage;
    const direct = await attempt(m, "sig_relay_test_key", s);
    const relayed = await attempt(m, "sig_relay_test_key", s, undefined, new RelayBatch(loop, SECRET));
    // The answers differ only in their Date header when the two calls straddle a second.
    expect(relayed).toEqual({ ...direct, headers: { ...direct.headers, Date: relayed.headers.Date } });
    expect(relayed).toMatchObject({ status: 489, nonRetryable: true, error: "the destination answered with status 489" });
    const got = await waitForHits(key, 2);
    expect(got[1].headers["upstash-signature"]).toBeTruthy();
    expect(got[1].headers["upstash-message-id"]).toBe("msg_relay_same");
    // The destination got the same headers either way (the relay's Node client adds Connection: keep-alive; the test
    // runner's fetch adds CF-Worker).
    const names = (h: Record<string, string>) => Object.keys(h).filter((n) => n !== "connection" && n !== "cf-worker").sort();
    expect(names(got[1].headers)).toEqual(names(got[0].headers));
  });

  it("answers as the worker's own fetch does: compressed bodies decoded, repeated headers folded, redirects not followed, dropped connections failed", async () => {
    const key = uniqueKey("relay-fetch");
    const cases = [
      call(dest(`${key}/encoded/gzip`), { method: "GET", body: null }),
      call(dest(`${key}/encoded/deflate`), { method: "GET", body: null }),
      call(dest(`${key}/encoded/br`), { method: "GET", body: null }),
      call(dest(`${key}/redirect/${encodeURIComponent(dest(`${key}/ok`))}`)),
      call(dest(`${key}/big/3000`), { limit: 2999 }),
    ];
    const batch = new RelayBatch(loop, SECRET);
    const relayed = await Promise.all(cases.map((c) => batch.send(c)));
    const direct = await Promise.all(cases.map((c) => send(c)));
    const withoutDate = (r: Reply) => ("failed" in r ? r : { ...r, headers: { ...r.headers, Date: [] } });
    expect(relayed.map(withoutDate)).toEqual(direct.map(withoutDate));
    expect(text(relayed[0])).toBe("compressed hello");
    expect(relayed[0]).toMatchObject({ headers: { "Set-Cookie": ["a=1", "b=2"], "X-Multi": ["one, two"] } });
    expect(relayed[3]).toMatchObject({ status: 302 });
    expect(relayed[4]).toMatchObject({ truncated: true });
    const dropped = await new RelayBatch(loop, SECRET).send(call(dest(`${key}/drop`)));
    expect(dropped).toMatchObject({ timedOut: false });
    expect("failed" in dropped && dropped.failed).toBeTruthy();
  });

  it("carries the consumer's attempts when the worker has one and the batch is large enough, and their outcomes are recorded", async () => {
    const { t, key, ids } = await dueMessages("relay-consumer", RELAY_MIN_BATCH - 1);
    ids.push(await dueButUnsent(dest(`${key}/status/500`), { tenant: t, headers: { "upstash-retries": "0" } }));
    expect(await consumeWithRelay(ids)).toBe(1);
    expect(await waitForHits(key, ids.length)).toHaveLength(ids.length);
    expect(await waitForState(ids[0], "DELIVERED", 10_000, t.token)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
    expect(await waitForState(ids[ids.length - 1], "FAILED", 10_000, t.token)).toContain("FAILED");
    const row = await dbOf(t).prepare("SELECT state FROM messages WHERE id = ?1").bind(ids[0]).first<{ state: string }>();
    expect(row?.state).toBe("DELIVERED");
  });

  it("leaves a small batch to the worker's own calls (under light load, a message's latency comes first)", async () => {
    const { t, key, ids } = await dueMessages("relay-small", RELAY_MIN_BATCH - 1);
    expect(await consumeWithRelay(ids)).toBe(0);
    expect(await waitForHits(key, ids.length)).toHaveLength(ids.length);
    expect(await waitForState(ids[0], "DELIVERED", 10_000, t.token)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
  });
});
