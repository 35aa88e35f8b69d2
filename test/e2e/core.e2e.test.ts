/**
 * End-to-end: the official `@upstash/qstash` SDK (Client and Receiver) against a real `npm run dev` server,
 * delivering to a real HTTP destination on 127.0.0.1. Covers publish and delivery, signatures, retries and
 * the DLQ, message get and cancel, logs, and callbacks (contract §2.4–2.6, §2.10, §4, §5, §6).
 */
import { createHash } from "node:crypto";
import { Client, Receiver, SignatureError } from "@upstash/qstash";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Destination, type Hit, startDestination } from "../support/destination";
import {
  USER1,
  USER2,
  base64,
  bodyText,
  decodeJwt,
  fromBase64,
  hitsFor,
  sleep,
  uniqueKey,
  waitFor,
  waitForHits,
} from "./helpers";
import { type DevServer, showServerOnFailure, startServer } from "./server";

/** The JSON body of a callback or failure-callback request (contract §5.2). */
interface CallbackBody {
  status: number;
  header: Record<string, string[]>;
  body: string;
  retried: number;
  maxRetries: number;
  sourceMessageId: string;
  url: string;
  method: string;
  sourceHeader: Record<string, string[]>;
  sourceBody: string;
  notBefore: number;
  createdAt: number;
  dlqId?: string;
  error?: string;
}

let server: DevServer;
let dest: Destination;
let client: Client;
const receiver = new Receiver({
  currentSigningKey: USER1.currentSigningKey,
  nextSigningKey: USER1.nextSigningKey,
});

/** Verifies a recorded request's signature as a receiver at `url` would. Rejects if it does not verify. */
function verifyHit(hit: Hit, url: string, r: Receiver = receiver): Promise<boolean> {
  const signature = hit.headers["upstash-signature"];
  if (!signature) throw new Error(`request ${hit.method} ${hit.path} carries no Upstash-Signature`);
  return r.verify({ signature, body: bodyText(hit), url });
}

/** The DLQ entry of a message, once it is there. */
function waitForDlqEntry(messageId: string, timeoutMs = 10_000) {
  return waitFor(
    `a DLQ entry for ${messageId}`,
    async () => (await client.dlq.listMessages()).messages.find((m) => m.messageId === messageId),
    timeoutMs,
    200,
  );
}

/** The log states of a message (newest first, as the server sends them), once `until` is among them. */
function waitForStates(messageId: string, until: string, timeoutMs = 10_000) {
  return waitFor(
    `log state ${until} for ${messageId}`,
    async () => {
      const { logs } = await client.logs({ filter: { messageId } });
      return logs.some((l) => String(l.state) === until) ? logs : undefined;
    },
    timeoutMs,
    200,
  );
}

beforeAll(async () => {
  server = await startServer();
  dest = await startDestination();
  client = new Client({ baseUrl: server.url, token: USER1.token });
});

afterAll(async () => {
  await dest?.close();
  await server?.stop();
});

// The tail of the server's output helps to tell a server bug from a test bug.
showServerOnFailure(() => server);

describe("signing keys", () => {
  it("GET /v2/keys returns exactly the fixed dev pair for user 1, and per-tenant pairs", async () => {
    const res = await fetch(`${server.url}/v2/keys`, { headers: { authorization: `Bearer ${USER1.token}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toStrictEqual({ current: USER1.currentSigningKey, next: USER1.nextSigningKey });

    const other = await fetch(`${server.url}/v2/keys`, { headers: { authorization: `Bearer ${USER2.token}` } });
    expect(other.status).toBe(200);
    expect(await other.json()).toStrictEqual({ current: USER2.currentSigningKey, next: USER2.nextSigningKey });

    const anonymous = await fetch(`${server.url}/v2/keys`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await anonymous.json()).toStrictEqual({ error: "Unauthorized" });
  });
});

describe("SDK dev mode", () => {
  it("QSTASH_DEV finds Boomerang through GET /v2/keys and publishes without any download", async () => {
    const port = new URL(server.url).port;
    const saved = { port: process.env.QSTASH_DEV_PORT };
    process.env.QSTASH_DEV_PORT = port;
    try {
      const devClient = new Client({ devMode: true });
      const devReceiver = new Receiver({ devMode: true });
      const key = uniqueKey("devmode");
      const url = `${dest.base}/${key}/ok`;
      const { messageId } = await devClient.publishJSON({ url, body: { dev: true } });
      expect(messageId).toMatch(/^msg_/);
      const [hit] = await waitForHits(dest, key, 1);
      const verified = await devReceiver.verify({ signature: hit.headers["upstash-signature"], body: bodyText(hit), url });
      expect(verified).toBe(true);
    } finally {
      if (saved.port === undefined) delete process.env.QSTASH_DEV_PORT;
      else process.env.QSTASH_DEV_PORT = saved.port;
    }
  });
});

describe("publish and delivery", () => {
  it("publishJSON delivers the body, Content-Type, forwarded headers and a verifiable signature", async () => {
    const key = uniqueKey("deliver");
    const url = `${dest.base}/${key}/ok`;
    const payload = { hello: "world", n: 1 };
    const { messageId } = await client.publishJSON({ url, body: payload, headers: { "X-Custom": "1" } });
    expect(messageId).toMatch(/^msg_/);

    const [hit] = await waitForHits(dest, key, 1);
    expect(hit.method).toBe("POST");
    expect(bodyText(hit)).toBe(JSON.stringify(payload));
    expect(hit.headers["content-type"]).toBe("application/json");
    await expect(verifyHit(hit, url)).resolves.toBe(true);
    expect(hit.headers["upstash-message-id"]).toBe(messageId);
    expect(hit.headers["upstash-retried"]).toBe("0");
    expect(hit.headers["user-agent"]).toBe("Upstash-QStash");
    // The forwarded header arrives without its prefix.
    expect(hit.headers["x-custom"]).toBe("1");
    expect(hit.headers["upstash-forward-x-custom"]).toBeUndefined();
    // The publisher's credentials and configuration never reach the destination.
    expect(hit.headers.authorization).toBeUndefined();
    expect(Object.keys(hit.headers).filter((h) => h.startsWith("upstash-telemetry"))).toEqual([]);
    expect(hit.headers["upstash-method"]).toBeUndefined();

    // Exactly one delivery.
    await sleep(500);
    expect(hitsFor(dest, key)).toHaveLength(1);
  });

  it("the signature has the §6.1 claims and is rejected for a tampered body, wrong keys or a wrong URL", async () => {
    const key = uniqueKey("sig");
    const url = `${dest.base}/${key}/ok?x=1`;
    const { messageId } = await client.publishJSON({ url, body: { sign: "me" } });
    const [hit] = await waitForHits(dest, key, 1);
    expect(hit.headers["upstash-message-id"]).toBe(messageId);
    // The destination's own query string survives and is part of the signed subject.
    expect(hit.url).toBe(`/${key}/ok?x=1`);
    await expect(verifyHit(hit, url)).resolves.toBe(true);

    const signature = hit.headers["upstash-signature"];
    const body = bodyText(hit);
    const { header, payload } = decodeJwt(signature);
    expect(header).toMatchObject({ alg: "HS256", typ: "JWT" });
    expect(payload.iss).toBe("Upstash");
    expect(payload.sub).toBe(url);
    expect(payload.nbf).toBe(0);
    expect(typeof payload.iat).toBe("number");
    expect(Math.abs(Number(payload.iat) - Date.now() / 1000)).toBeLessThan(60);
    expect(Number(payload.exp) - Number(payload.iat)).toBe(300);
    expect(String(payload.jti)).toMatch(/^jwt_/);
    expect(payload.body).toBe(`${createHash("sha256").update(Buffer.from(hit.body, "base64")).digest("base64url")}=`);

    // A changed body, a different subject, or keys of another tenant all fail.
    await expect(receiver.verify({ signature, body: `${body} `, url })).rejects.toBeInstanceOf(SignatureError);
    await expect(receiver.verify({ signature, body, url: `${url}&y=2` })).rejects.toBeInstanceOf(SignatureError);
    const otherTenant = new Receiver({ currentSigningKey: USER2.currentSigningKey, nextSigningKey: USER2.nextSigningKey });
    await expect(otherTenant.verify({ signature, body, url })).rejects.toBeInstanceOf(SignatureError);
    // It is signed with the current key: a receiver that holds only the next key rejects it ...
    const onlyNext = new Receiver({ currentSigningKey: USER1.nextSigningKey, nextSigningKey: USER2.nextSigningKey });
    await expect(onlyNext.verify({ signature, body, url })).rejects.toBeInstanceOf(SignatureError);
    // ... and one that holds the current key only as its fallback accepts it.
    const fallback = new Receiver({ currentSigningKey: USER2.currentSigningKey, nextSigningKey: USER1.currentSigningKey });
    await expect(fallback.verify({ signature, body, url })).resolves.toBe(true);
  });
});

describe("concurrent publishes (group commit across requests)", () => {
  it("60 concurrent SDK publishes, half with a callback: each delivered once, verified, with its callback", async () => {
    const key = uniqueKey("burst");
    const cbKey = `${key}-cb`;
    const url = (i: number) => `${dest.base}/${key}/ok?i=${i}`;
    const callback = `${dest.base}/${cbKey}/ok`;
    const published = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        client.publishJSON({ url: url(i), body: { i }, ...(i % 2 === 0 ? { callback } : {}) }),
      ),
    );
    const ids = published.map((p) => p.messageId);
    expect(new Set(ids).size).toBe(60);

    const hits = await waitForHits(dest, key, 60, 30_000);
    const callbacks = await waitForHits(dest, cbKey, 30, 30_000);
    await sleep(1_000);
    expect(hitsFor(dest, key)).toHaveLength(60);
    expect(hitsFor(dest, cbKey)).toHaveLength(30);
    for (const hit of hits) {
      const i = Number(new URL(hit.url, dest.base).searchParams.get("i"));
      expect(hit.headers["upstash-message-id"]).toBe(ids[i]);
      expect(JSON.parse(bodyText(hit))).toEqual({ i });
      await expect(verifyHit(hit, url(i))).resolves.toBe(true);
    }
    const sources = callbacks.map((h) => (JSON.parse(bodyText(h)) as CallbackBody).sourceMessageId).sort();
    expect(sources).toEqual(ids.filter((_, i) => i % 2 === 0).sort());
    for (const h of callbacks) await expect(verifyHit(h, callback)).resolves.toBe(true);
  });
});

describe("retries and the DLQ", () => {
  it("a failing destination is retried with Upstash-Retried 0,1,2, lands in the DLQ, and a DLQ retry delivers it", async () => {
    const key = uniqueKey("retry");
    // 500 for the first three requests, 200 afterwards: the original fails, the DLQ retry succeeds.
    const url = `${dest.base}/${key}/flaky/3`;
    const payload = { attempt: "me" };
    const { messageId } = await client.publishJSON({ url, body: payload, retries: 2, retryDelay: "100" });

    const attempts = await waitForHits(dest, key, 3);
    expect(attempts.map((h) => h.headers["upstash-retried"])).toEqual(["0", "1", "2"]);
    for (const hit of attempts) {
      expect(hit.headers["upstash-message-id"]).toBe(messageId);
      expect(bodyText(hit)).toBe(JSON.stringify(payload));
      await expect(verifyHit(hit, url)).resolves.toBe(true);
    }
    // Every attempt carries a fresh token.
    expect(new Set(attempts.map((h) => decodeJwt(h.headers["upstash-signature"]).payload.jti)).size).toBe(3);

    const entry = await waitForDlqEntry(messageId);
    expect(entry.dlqId).toMatch(/^\d+-\d+$/);
    expect(entry.responseStatus).toBe(500);
    expect(entry.responseBody).toBe("not yet");
    expect(entry.url).toBe(url);
    expect(entry.method).toBe("POST");
    expect(entry.body).toBe(JSON.stringify(payload));
    expect(entry.maxRetries).toBe(2);
    expect(entry.retryDelayExpression).toBe("100");
    expect(entry.header?.["Content-Type"]).toEqual(["application/json"]);

    // No fourth attempt after the retries ran out.
    await sleep(1_000);
    expect(hitsFor(dest, key)).toHaveLength(3);
    // A failed message is no longer pending.
    await expect(client.messages.get(messageId)).rejects.toMatchObject({ status: 404 });

    const retried = await client.dlq.retry(entry.dlqId);
    expect(retried.responses).toHaveLength(1);
    const newId = retried.responses[0].messageId;
    expect(newId).toMatch(/^msg_/);
    expect(newId).not.toBe(messageId);

    const all = await waitForHits(dest, key, 4);
    const fourth = all[3];
    expect(fourth.headers["upstash-message-id"]).toBe(newId);
    expect(fourth.headers["upstash-retried"]).toBe("0");
    expect(bodyText(fourth)).toBe(JSON.stringify(payload));
    await expect(verifyHit(fourth, url)).resolves.toBe(true);
    await waitForStates(newId, "DELIVERED");

    // The retry removed the entry: it is gone from the list, and deleting it is a 404.
    const after = await client.dlq.listMessages();
    expect(after.messages.find((m) => m.dlqId === entry.dlqId)).toBeUndefined();
    await expect(client.dlq.delete(entry.dlqId)).rejects.toMatchObject({ status: 404 });
    // The successful retry did not fail again.
    expect(after.messages.find((m) => m.messageId === newId)).toBeUndefined();
  });

  it("a 489 with Upstash-NonRetryable-Error is attempted once, goes to the DLQ, and can be deleted once", async () => {
    const key = uniqueKey("nonretryable");
    const url = `${dest.base}/${key}/nonretryable`;
    const { messageId } = await client.publishJSON({ url, body: { stop: true }, retries: 3, retryDelay: "100" });

    const entry = await waitForDlqEntry(messageId);
    expect(entry.responseStatus).toBe(489);
    expect(entry.responseBody).toBe("do not retry");
    expect(entry.maxRetries).toBe(3);
    await sleep(1_000);
    const hits = hitsFor(dest, key);
    expect(hits).toHaveLength(1);
    expect(hits[0].headers["upstash-retried"]).toBe("0");

    const logs = await waitForStates(messageId, "FAILED");
    const states = logs.map((l) => String(l.state));
    expect(states).toContain("ERROR");
    expect(states).not.toContain("RETRY");

    await expect(client.dlq.delete(entry.dlqId)).resolves.toEqual({ deleted: 1 });
    const after = await client.dlq.listMessages();
    expect(after.messages.find((m) => m.dlqId === entry.dlqId)).toBeUndefined();
    await expect(client.dlq.delete(entry.dlqId)).rejects.toMatchObject({ status: 404 });
  });
});

describe("messages and logs", () => {
  it("a delayed message can be read, cancelled, and its cancellation shows in the logs", async () => {
    const key = uniqueKey("delayed");
    const url = `${dest.base}/${key}/ok`;
    const payload = { later: true };
    const before = Date.now();
    const { messageId } = await client.publishJSON({ url, body: payload, delay: 60 });
    const after = Date.now();

    const message = await client.messages.get(messageId);
    expect(message.messageId).toBe(messageId);
    expect(message.url).toBe(url);
    expect(message.method).toBe("POST");
    expect(message.body).toBe(JSON.stringify(payload));
    expect(message.header?.["Content-Type"]).toEqual(["application/json"]);
    expect(message.notBefore).toBeGreaterThanOrEqual(before + 55_000);
    expect(message.notBefore).toBeLessThanOrEqual(after + 61_000);
    expect(message.createdAt).toBeGreaterThanOrEqual(before - 1_000);
    expect(message.createdAt).toBeLessThanOrEqual(after + 1_000);

    await expect(client.messages.cancel(messageId)).resolves.toEqual({ cancelled: 1 });
    await expect(client.messages.get(messageId)).rejects.toMatchObject({ status: 404 });
    // Cancelling twice is a 404: the message is no longer pending.
    await expect(client.messages.cancel(messageId)).rejects.toMatchObject({ status: 404 });

    const logs = await waitForStates(messageId, "CANCELED");
    expect(logs.every((l) => l.messageId === messageId)).toBe(true);
    const oldestFirst = logs.map((l) => String(l.state)).reverse();
    expect(oldestFirst).toEqual(["CREATED", "CANCEL_REQUESTED", "CANCELED"]);
    const created = logs.find((l) => l.state === "CREATED");
    expect(created?.nextDeliveryTime).toBeGreaterThanOrEqual(before + 55_000);

    // Nothing was delivered.
    expect(hitsFor(dest, key)).toHaveLength(0);
  });

  it("logs show CREATED, ACTIVE, DELIVERED (newest first) for a delivered message", async () => {
    const key = uniqueKey("logs");
    const url = `${dest.base}/${key}/ok`;
    const before = Date.now();
    const { messageId } = await client.publishJSON({ url, body: { log: "me" } });
    await waitForHits(dest, key, 1);

    const logs = await waitFor(
      `DELIVERED in the logs of ${messageId}`,
      async () => {
        const res = await client.logs({ messageIds: [messageId] });
        return res.logs.some((l) => l.state === "DELIVERED") ? res.logs : undefined;
      },
      10_000,
      200,
    );
    expect(logs.map((l) => l.state)).toEqual(["DELIVERED", "ACTIVE", "CREATED"]);
    for (const entry of logs) {
      expect(entry.messageId).toBe(messageId);
      expect(entry.url).toBe(url);
      expect(entry.time).toBeGreaterThanOrEqual(before - 1_000);
    }
    const times = logs.map((l) => l.time);
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    // The log body is the base64 of the message body.
    expect(logs.find((l) => l.state === "CREATED")?.body).toBe(base64(JSON.stringify({ log: "me" })));
  });
});

describe("callbacks", () => {
  it("a failing destination produces one signed callback per attempt and one failure callback with a DLQ id", async () => {
    const key = uniqueKey("cbfail");
    const cbKey = `${key}-cb`;
    const fcbKey = `${key}-fcb`;
    const url = `${dest.base}/${key}/status/500`;
    const callback = `${dest.base}/${cbKey}/ok`;
    const failureCallback = `${dest.base}/${fcbKey}/ok`;
    const payload = { order: 42, note: "callback test" };
    const before = Date.now();
    const { messageId } = await client.publishJSON({
      url,
      body: payload,
      callback,
      failureCallback,
      retries: 1,
      retryDelay: "100",
    });
    const after = Date.now();

    await waitForHits(dest, key, 2);
    await waitForHits(dest, cbKey, 2, 20_000);
    await waitForHits(dest, fcbKey, 1, 20_000);
    // Let anything extra arrive before counting.
    await sleep(1_000);
    expect(hitsFor(dest, key)).toHaveLength(2);
    const cbHits = hitsFor(dest, cbKey);
    const fcbHits = hitsFor(dest, fcbKey);
    expect(cbHits).toHaveLength(2);
    expect(fcbHits).toHaveLength(1);

    const checkCommon = (b: CallbackBody) => {
      expect(b.status).toBe(500);
      expect(b.header["Content-Type"]).toEqual(["text/plain"]);
      expect(fromBase64(b.body)).toBe("status 500");
      expect(b.maxRetries).toBe(1);
      expect(b.sourceMessageId).toBe(messageId);
      expect(b.url).toBe(url);
      expect(b.method).toBe("POST");
      expect(b.sourceHeader["Content-Type"]).toEqual(["application/json"]);
      expect(b.sourceBody).toBe(base64(JSON.stringify(payload)));
      expect(typeof b.notBefore).toBe("number");
      expect(typeof b.createdAt).toBe("number");
      expect(b.createdAt).toBeGreaterThanOrEqual(before - 1_000);
      expect(b.createdAt).toBeLessThanOrEqual(after + 1_000);
      expect(b.notBefore).toBeGreaterThanOrEqual(b.createdAt);
      expect(b.notBefore).toBeLessThanOrEqual(after + 1_000);
    };

    const callbackIds = new Set<string>();
    const bodies: CallbackBody[] = [];
    for (const hit of cbHits) {
      expect(hit.method).toBe("POST");
      expect(hit.headers["content-type"]).toBe("application/json");
      await expect(verifyHit(hit, callback)).resolves.toBe(true);
      // A callback is a message of its own: its own id, its own retry counter.
      expect(hit.headers["upstash-message-id"]).toMatch(/^msg_/);
      expect(hit.headers["upstash-message-id"]).not.toBe(messageId);
      expect(hit.headers["upstash-retried"]).toBe("0");
      callbackIds.add(hit.headers["upstash-message-id"]);
      const b = JSON.parse(bodyText(hit)) as CallbackBody;
      checkCommon(b);
      expect(b.dlqId).toBeUndefined();
      bodies.push(b);
    }
    expect(callbackIds.size).toBe(2);
    expect(bodies.map((b) => b.retried).sort()).toEqual([0, 1]);

    const [fcbHit] = fcbHits;
    await expect(verifyHit(fcbHit, failureCallback)).resolves.toBe(true);
    // The callback URL is the subject: the destination's URL does not verify.
    await expect(verifyHit(fcbHit, url)).rejects.toBeInstanceOf(SignatureError);
    expect(fcbHit.headers["upstash-message-id"]).not.toBe(messageId);
    expect(callbackIds.has(fcbHit.headers["upstash-message-id"])).toBe(false);
    const failure = JSON.parse(bodyText(fcbHit)) as CallbackBody;
    checkCommon(failure);
    expect(failure.retried).toBe(1);
    expect(typeof failure.dlqId).toBe("string");

    const entry = await waitForDlqEntry(messageId);
    expect(entry.dlqId).toBe(failure.dlqId);
  });

  it("a successful delivery produces exactly one callback with status 200 and no failure callback", async () => {
    const key = uniqueKey("cbok");
    const cbKey = `${key}-cb`;
    const fcbKey = `${key}-fcb`;
    const url = `${dest.base}/${key}/ok`;
    const callback = `${dest.base}/${cbKey}/ok`;
    const failureCallback = `${dest.base}/${fcbKey}/ok`;
    const payload = { fine: true };
    const { messageId } = await client.publishJSON({
      url,
      body: payload,
      callback,
      failureCallback,
      retries: 2,
      retryDelay: "100",
    });

    const [cbHit] = await waitForHits(dest, cbKey, 1, 20_000);
    await sleep(1_000);
    expect(hitsFor(dest, key)).toHaveLength(1);
    expect(hitsFor(dest, cbKey)).toHaveLength(1);
    expect(hitsFor(dest, fcbKey)).toHaveLength(0);

    await expect(verifyHit(cbHit, callback)).resolves.toBe(true);
    const b = JSON.parse(bodyText(cbHit)) as CallbackBody;
    expect(b.status).toBe(200);
    expect(fromBase64(b.body)).toBe("ok");
    expect(b.retried).toBe(0);
    expect(b.maxRetries).toBe(2);
    expect(b.sourceMessageId).toBe(messageId);
    expect(b.url).toBe(url);
    expect(b.sourceBody).toBe(base64(JSON.stringify(payload)));
    expect(b.dlqId).toBeUndefined();
    expect(b.error).toBeUndefined();
  });

  it("Upstash-Callback-Method and Upstash-Callback-Forward-* configure the callback request only", async () => {
    const key = uniqueKey("cbhdr");
    const cbKey = `${key}-cb`;
    const url = `${dest.base}/${key}/ok`;
    const callback = `${dest.base}/${cbKey}/ok`;
    const { messageId } = await client.publishJSON({
      url,
      body: { forward: "headers" },
      callback,
      headers: {
        "Upstash-Callback-Forward-X-Token": "abc",
        "Upstash-Callback-Method": "PUT",
      },
    });

    const [hit] = await waitForHits(dest, key, 1);
    expect(hit.method).toBe("POST");
    expect(hit.headers["x-token"]).toBeUndefined();

    const [cbHit] = await waitForHits(dest, cbKey, 1, 20_000);
    expect(cbHit.method).toBe("PUT");
    expect(cbHit.headers["x-token"]).toBe("abc");
    expect(cbHit.headers["upstash-callback-forward-x-token"]).toBeUndefined();
    await expect(verifyHit(cbHit, callback)).resolves.toBe(true);
    const b = JSON.parse(bodyText(cbHit)) as CallbackBody;
    expect(b.status).toBe(200);
    expect(b.sourceMessageId).toBe(messageId);
  });
});
