import { createExecutionContext, createMessageBatch, env, getQueueResult } from "cloudflare:test";
import { jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import type { DeliveryTask } from "../../src/env";
import { consumeBatch } from "../../src/delivery/consumer";
import worker from "../../src/index";
import { api, dbOf, dest, freshTenant, hits, publishOk, refusedUrl, states, uniqueKey, waitFor, waitForHits, waitForState, makeDue, dueButUnsent } from "./helpers";

const CURRENT = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r";

async function sha256b64url(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return btoa(String.fromCharCode(...d)).replace(/\+/g, "-").replace(/\//g, "_");
}

async function dlqEntry(messageId: string) {
  return waitFor(`DLQ entry of ${messageId}`, async () => {
    const res = await api(`/v2/dlq?messageId=${messageId}`);
    const body = await res.json<{ messages: Record<string, unknown>[] }>();
    return body.messages[0];
  });
}

describe("delivery", () => {
  it("signs each delivery with the tenant's current key, sub = exact URL, body hash of the bytes", async () => {
    const key = uniqueKey();
    const url = dest(`${key}/ok?x=1`);
    const id = await publishOk(url, { body: "signed body", headers: { "upstash-forward-x-a": "b" } });
    const [hit] = await waitForHits(key, 1);
    expect(hit.headers["user-agent"]).toBe("Upstash-QStash");
    expect(hit.headers["upstash-message-id"]).toBe(id);
    expect(hit.headers["upstash-retried"]).toBe("0");
    expect(hit.headers["x-a"]).toBe("b");
    const { payload, protectedHeader } = await jwtVerify(hit.headers["upstash-signature"], new TextEncoder().encode(CURRENT), {
      issuer: "Upstash",
    });
    expect(protectedHeader).toEqual({ alg: "HS256", typ: "JWT" });
    expect(payload.sub).toBe(url);
    expect(payload.nbf).toBe(0);
    expect(payload.exp! - payload.iat!).toBe(300);
    expect(payload.jti).toMatch(/^jwt_/);
    expect(payload.body).toBe(await sha256b64url(new TextEncoder().encode("signed body")));
    expect(String(payload.body)).toMatch(/=$/);
  });

  it("retries a 5xx with the Retry-Delay expression, then succeeds; Upstash-Retried counts", async () => {
    const key = uniqueKey();
    const id = await publishOk(dest(`${key}/flaky/2`), { headers: { "upstash-retry-delay": "100 * retried", "upstash-retries": "3" } });
    const got = await waitForHits(key, 3);
    expect(got.map((h) => h.headers["upstash-retried"])).toEqual(["0", "1", "2"]);
    expect(got.every((h) => h.headers["upstash-message-id"] === id)).toBe(true);
    const s = await waitForState(id, "DELIVERED");
    expect(s).toEqual(["CREATED", "ACTIVE", "ERROR", "RETRY", "ACTIVE", "ERROR", "RETRY", "ACTIVE", "DELIVERED"]);
    expect((await api(`/v2/messages/${id}`)).status).toBe(404);
  });

  it("logs the error response and the next delivery time", async () => {
    const key = uniqueKey();
    const id = await publishOk(dest(`${key}/flaky/1`), { headers: { "upstash-retry-delay": "300" } });
    await waitForState(id, "DELIVERED");
    const { logs } = await (await api(`/v2/logs?messageId=${id}&order=asc`)).json<{ logs: Record<string, unknown>[] }>();
    const error = logs.find((l) => l.state === "ERROR")!;
    expect(error.responseStatus).toBe(500);
    expect(atob(error.responseBody as string)).toBe("not yet");
    expect(error.error).toMatch(/status 500/);
    const retry = logs.find((l) => l.state === "RETRY")!;
    expect(retry.nextDeliveryTime as number).toBeGreaterThanOrEqual((error.time as number) + 299);
    const hs = await hits(key);
    expect(hs[1].time - hs[0].time).toBeGreaterThanOrEqual(280);
  });

  it("moves a message whose retries are spent to the DLQ with the last response", async () => {
    const key = uniqueKey();
    const id = await publishOk(dest(`${key}/status/503`), { headers: { "upstash-retries": "1", "upstash-retry-delay": "50" } });
    const entry = await dlqEntry(id);
    expect(entry).toMatchObject({ messageId: id, responseStatus: 503, responseBody: "status 503", maxRetries: 1 });
    expect(entry.dlqId).toMatch(/^\d{13}-\d+$/);
    expect((await hits(key)).length).toBe(2);
    expect(await states(id)).toEqual(["CREATED", "ACTIVE", "ERROR", "RETRY", "ACTIVE", "ERROR", "FAILED"]);
  });

  it("does not retry a 489 with Upstash-NonRetryable-Error", async () => {
    const key = uniqueKey();
    const id = await publishOk(dest(`${key}/nonretryable`), { headers: { "upstash-retries": "3", "upstash-retry-delay": "10" } });
    const entry = await dlqEntry(id);
    expect(entry.responseStatus).toBe(489);
    await new Promise((r) => setTimeout(r, 300));
    expect((await hits(key)).length).toBe(1);
  });

  it("honours Retry-After from the failed response over the expression", async () => {
    const key = uniqueKey();
    const id = await publishOk(dest(`${key}/retry-after/1`), { headers: { "upstash-retry-delay": "10" } });
    await waitForState(id, "DELIVERED", 8000);
    const hs = await hits(key);
    expect(hs[1].time - hs[0].time).toBeGreaterThanOrEqual(950);
  });

  it("records a refused connection as status 0 with an error", async () => {
    const id = await publishOk(refusedUrl("x"), { headers: { "upstash-retries": "0" } });
    const entry = await dlqEntry(id);
    expect(entry.responseStatus).toBe(0);
    const { logs } = await (await api(`/v2/logs?messageId=${id}&state=ERROR`)).json<{ logs: Record<string, unknown>[] }>();
    expect(logs[0].error).toMatch(/no response/);
  });

  it("aborts an attempt that runs past Upstash-Timeout", async () => {
    const key = uniqueKey();
    const id = await publishOk(dest(`${key}/sleep/3000`), { headers: { "upstash-retries": "0", "upstash-timeout": "1s" } });
    const entry = await dlqEntry(id);
    expect(entry.responseStatus).toBe(0);
    const { logs } = await (await api(`/v2/logs?messageId=${id}&state=ERROR`)).json<{ logs: Record<string, unknown>[] }>();
    expect(logs[0].error).toMatch(/timed out after 1s/);
  });

  it("does not follow redirects (3xx is a failure; the Location is never fetched)", async () => {
    const key = uniqueKey();
    const target = uniqueKey("target");
    const id = await publishOk(dest(`${key}/redirect/${encodeURIComponent(dest(`${target}/ok`))}`), { headers: { "upstash-retries": "0" } });
    const entry = await dlqEntry(id);
    expect(entry.responseStatus).toBe(302);
    expect((entry.responseHeader as Record<string, string[]>).Location).toEqual([dest(`${target}/ok`)]);
    expect((await hits(key)).length).toBe(1);
    expect(await hits(target)).toEqual([]);
  });

  it("delivers a delayed message through the scheduler no earlier than due", async () => {
    const key = uniqueKey();
    const t0 = Date.now();
    await publishOk(dest(`${key}/ok`), { headers: { "upstash-delay": "1s" } });
    const [hit] = await waitForHits(key, 1, 5000);
    expect(hit.time - t0).toBeGreaterThanOrEqual(990);
    expect(hit.time - t0).toBeLessThan(4000); // generous: CI machines can be busy; bench/ measures precision
  });

  it("a duplicate queue task for a finished message delivers nothing more", async () => {
    const key = uniqueKey();
    const id = await publishOk(dest(`${key}/ok`));
    await waitForState(id, "DELIVERED");
    await env.DELIVERIES.send({ id });
    await new Promise((r) => setTimeout(r, 500));
    expect((await hits(key)).length).toBe(1);
  });
});

describe("the queue handler", () => {

  it("claims a batch at once, runs a task that came twice once, and acks tasks for unknown or finished ids", async () => {
    const keyA = uniqueKey("qa");
    const keyB = uniqueKey("qb");
    const a = await dueButUnsent(dest(`${keyA}/ok`));
    const b = await dueButUnsent(dest(`${keyB}/ok`));
    const send = (id: string, n: number) => ({ id: `task-${n}`, timestamp: new Date(), attempts: 1, body: { id } });
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [send(a, 1), send(b, 2), send(a, 3), send("msg_unknown", 4)]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env);
    const result = await getQueueResult(batch, ctx);
    expect(result.retryMessages).toEqual([]);
    expect([...result.explicitAcks].sort()).toEqual(["task-1", "task-2", "task-3", "task-4"]);
    expect((await hits(keyA)).length).toBe(1);
    expect((await hits(keyB)).length).toBe(1);
    for (const id of [a, b]) expect(await states(id)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);

    // The same tasks again: both messages are finished, nothing more is delivered.
    const again = createMessageBatch<DeliveryTask>("boomerang-deliveries", [send(a, 5), send(b, 6)]);
    const ctx2 = createExecutionContext();
    await worker.queue(again, env);
    expect((await getQueueResult(again, ctx2)).explicitAcks.length).toBe(2);
    expect((await hits(keyA)).length + (await hits(keyB)).length).toBe(2);
  });

  it("fails for good, without calling, a message stored with a header HTTP cannot carry", async () => {
    // Publish refuses such headers now (test/worker/fanout.test.ts); a message stored before that check must not go
    // back to the queue on every try.
    const key = uniqueKey("badheader");
    const id = await dueButUnsent(dest(`${key}/ok`));
    await env.DB.prepare("UPDATE messages SET headers = ?2 WHERE id = ?1").bind(id, JSON.stringify({ "Bad Name": ["x"] })).run();
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: "task-bad", timestamp: new Date(), attempts: 1, body: { id } }]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env);
    const result = await getQueueResult(batch, ctx);
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toEqual(["task-bad"]);
    expect((await dlqEntry(id)).responseStatus).toBe(0);
    const { logs } = await (await api(`/v2/logs?messageId=${id}`)).json<{ logs: { state: string; error?: string }[] }>();
    expect(logs.map((l) => l.state).reverse()).toEqual(["CREATED", "ACTIVE", "ERROR", "FAILED"]);
    expect(logs.find((l) => l.error)?.error).toMatch(/headers cannot be sent: "Bad Name" is not a valid HTTP header name; it was not called/);
    expect(await hits(key)).toHaveLength(0);
  });

  it("runs every id of a pack, and hands back only the ids that failed, as a pack of their own", async () => {
    const keyA = uniqueKey("pa");
    const keyB = uniqueKey("pb");
    const a = await dueButUnsent(dest(`${keyA}/ok`));
    // A message of another tenant whose signing key is missing: its delivery throws inside the consumer.
    const t = await freshTenant();
    const res = await api("/v2/publish/" + dest(`${keyB}/ok`), { method: "POST", token: t.token, headers: { "upstash-delay": "1h" } });
    expect(res.status).toBe(200);
    const { messageId: b } = await res.json<{ messageId: string }>();
    await makeDue(dbOf(t), [b]);
    const keys = await dbOf(t).prepare("SELECT * FROM signing_keys WHERE tenant_id = ?1").bind(t.tenantId).first<Record<string, string | number>>();
    await dbOf(t).prepare("DELETE FROM signing_keys WHERE tenant_id = ?1").bind(t.tenantId).run();

    const pack = { id: "pack-1", timestamp: new Date(), attempts: 1, body: { ids: [a, b, a, "msg_unknown"] } };
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [pack]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env);
    const result = await getQueueResult(batch, ctx);
    // The pack is acked: a was delivered once, and b went back to the queue alone.
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toEqual(["pack-1"]);
    expect((await hits(keyA)).length).toBe(1);
    expect(await states(a)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
    expect(await hits(keyB)).toEqual([]);

    // With the key back, the pack that carries b alone delivers it; a is not delivered again.
    await dbOf(t)
      .prepare("INSERT INTO signing_keys (tenant_id, current_key, next_key, updated_at) VALUES (?1, ?2, ?3, ?4)")
      .bind(keys!.tenant_id, keys!.current_key, keys!.next_key, keys!.updated_at)
      .run();
    await waitForHits(keyB, 1, 15_000);
    // Each try that found no key logged an ACTIVE entry and gave its lease back at once.
    const logged = await waitForState(b, "DELIVERED", 10_000, t.token);
    expect(logged[0]).toBe("CREATED");
    expect(logged.at(-1)).toBe("DELIVERED");
    expect((await hits(keyB)).length).toBe(1);
    expect((await hits(keyA)).length).toBe(1);
  });

  it("retries the whole pack when every id in it failed", async () => {
    const t = await freshTenant();
    const key = uniqueKey("pall");
    const res = await api("/v2/publish/" + dest(`${key}/ok`), { method: "POST", token: t.token, headers: { "upstash-delay": "1h" } });
    const { messageId: id } = await res.json<{ messageId: string }>();
    await makeDue(dbOf(t), [id]);
    await dbOf(t).prepare("DELETE FROM signing_keys WHERE tenant_id = ?1").bind(t.tenantId).run();
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: "pack-2", timestamp: new Date(), attempts: 1, body: { ids: [id] } }]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual([]);
    expect(result.retryMessages.map((r: { msgId: string }) => r.msgId)).toEqual(["pack-2"]);
    // Its lease was given back: the next try can claim it at once.
    const row = await dbOf(t).prepare("SELECT state, lease_until FROM messages WHERE id = ?1").bind(id).first();
    expect(row).toEqual({ state: "CREATED", lease_until: null });
  });

  it("delivers a callback that is due now in the same invocation, before the handler returns", async () => {
    const key = uniqueKey("inl");
    const id = await publishOk(dest(`${key}/ok`), { headers: { "upstash-delay": "1h", "upstash-callback": dest(`${key}/cb`) } });
    await env.DB.prepare("UPDATE messages SET due_at = ?2, not_before = 0 WHERE id = ?1").bind(id, Date.now() - 1000).run();
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: "t", timestamp: new Date(), attempts: 1, body: { id } }]);
    await worker.queue(batch, env);
    // No waiting: both arrivals happened inside the handler.
    const got = await hits(key);
    expect(got.map((h) => h.path)).toEqual([`/${key}/ok`, `/${key}/cb`]);
    const callbackId = got[1].headers["upstash-message-id"];
    expect(await states(callbackId)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
  });

  it("an inline callback cut at the invocation's time budget goes back to the queue unrecorded, then succeeds there", async () => {
    const key = uniqueKey("budget");
    // The source's own timeout fits the budget, so it runs here; its callback's (MAX_TIMEOUT, 10 s here) does not.
    const id = await publishOk(dest(`${key}/ok`), {
      headers: { "upstash-delay": "1h", "upstash-timeout": "1s", "upstash-callback": dest(`${key}-cb/sleep/2500`) },
    });
    await env.DB.prepare("UPDATE messages SET due_at = ?2, not_before = 0 WHERE id = ?1").bind(id, Date.now() - 1000).run();
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: "t", timestamp: new Date(), attempts: 1, body: { id } }]);
    // An invocation with 1.5 s left: the callback (its own timeout is MAX_TIMEOUT, 10 s here) is cut at the budget.
    await consumeBatch(batch, env, 1500);
    const [first] = await hits(`${key}-cb`);
    expect(first).toBeDefined();
    const callbackId = first.headers["upstash-message-id"];
    // Handed back by the regular consumer: a second request, this time answered, and one recorded outcome.
    await waitForState(callbackId, "DELIVERED", 15_000);
    expect((await hits(`${key}-cb`)).length).toBe(2);
    expect(await states(callbackId)).toEqual(["CREATED", "ACTIVE", "ACTIVE", "DELIVERED"]);
    expect(await states(id)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
  });

  it("leaves a message whose attempt is under way (live lease) to that attempt", async () => {
    const key = uniqueKey("lease");
    const id = await dueButUnsent(dest(`${key}/ok`));
    await env.DB.prepare("UPDATE messages SET state = 'ACTIVE', lease_until = ?2 WHERE id = ?1").bind(id, Date.now() + 60_000).run();
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: "t", timestamp: new Date(), attempts: 1, body: { id } }]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["t"]);
    expect(await hits(key)).toEqual([]);
    expect(await states(id)).toEqual(["CREATED"]);
  });
});
