/**
 * Bodies above INLINE_BODY_MAX live in R2 (src/db/blobs.ts), through the real local D1 and R2: a 1 MB body
 * answered with 1 MB and a callback (the payload that used to overflow D1's 2 MB value limit and loop forever),
 * the 10 MB maximum with a 10 MB failing response, a callback and a failure callback, and objects deleted with the
 * last row that refers to them.
 */
import { type CallbackBody, pattern } from "../support/large";
import { collectOrphans } from "../../src/db/blobs";
import { idFloor } from "../../src/core/ids";
import { shardEnv, shardOfMessageId } from "../../src/db/shards";
import type { Env } from "../../src/env";
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import worker from "../../src/index";
import { describe, expect, it } from "vitest";
import { sweepAll } from "../../src/delivery/sweeper";
import { BASE, api, dest, freshTenant, hits, publishOk, states, uniqueKey, waitFor, waitForHits } from "./helpers";

const fromBase64 = (s: string) => Uint8Array.from(atob(s), (ch) => ch.charCodeAt(0));


const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

async function messageRow(id: string) {
  return shardEnv(env as Env, shardOfMessageId(id)).DB.prepare("SELECT body IS NULL AS no_blob, body_ref FROM messages WHERE id = ?1").bind(id).first<{ no_blob: number; body_ref: string | null }>();
}


/**
 * Makes finished messages look 400 days old (finish and creation time, and so their ids), so the next sweep prunes
 * them with their logs. Returns the ids they have now.
 */
async function expire(ids: string[]): Promise<string[]> {
  const longAgo = Date.now() - 400 * 86_400_000;
  const out: string[] = [];
  for (const id of ids) {
    const db = shardEnv(env as Env, shardOfMessageId(id)).DB;
    const old = idFloor(longAgo) + id.slice(11);
    await db.batch([
      db.prepare("UPDATE messages SET id = ?3, finished_at = ?2, created_at = ?2 WHERE id = ?1").bind(id, longAgo, old),
      db.prepare("UPDATE dlq SET message_id = ?2 WHERE message_id = ?1").bind(id, old),
    ]);
    out.push(old);
  }
  return out;
}

/**
 * Sweeps until nothing expired is left. The sweep runs two hours ahead, past the grace period in which a fresh
 * object is never deleted (its row may not be written yet); rows of other tests are far from expiring.
 */
async function pruneAll(): Promise<void> {
  const at = Date.now() + 2 * 3_600_000;
  for (let i = 0; i < 20; i++) {
    const r = await sweepAll(env, at, { rewalk: true });
    if (r.prunedMessages === 0) return;
  }
}

describe("bodies in R2", () => {
  it("a 1 MB body answered with 1 MB and a callback is delivered once, with its callback, and ends", async () => {
    const t = await freshTenant();
    const key = uniqueKey("mb");
    const body = pattern(1_000_000);
    const id = await publishOk(dest(`${key}/big/1000000`), {
      token: t.token,
      body,
      headers: { "upstash-callback": dest(`${key}-cb/ok`) },
    });
    const [cb] = await waitForHits(`${key}-cb`, 1, 20_000);
    const payload = JSON.parse(new TextDecoder().decode(fromBase64(cb.body))) as CallbackBody;
    expect(payload.status).toBe(200);
    expect(payload.sourceMessageId).toBe(id);
    expect(equalBytes(fromBase64(payload.sourceBody), body)).toBe(true);
    expect(equalBytes(fromBase64(payload.body), new Uint8Array(1_000_000).fill(0x61))).toBe(true);
    expect(await states(id, t.token)).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
    const [delivered] = await hits(key);
    expect(equalBytes(fromBase64(delivered.body), body)).toBe(true);
    // The row keeps a reference, not the bytes; the object is in the bucket under the tenant.
    const row = await messageRow(id);
    expect(row).toMatchObject({ no_blob: 1 });
    expect(row!.body_ref!.startsWith(`${t.tenantId}/`)).toBe(true);
    expect(await env.BODIES.head(row!.body_ref!)).not.toBeNull();
    // Read back through the API, the logs show the exact bytes of the body and of the response.
    const logs = await (await api(`/v2/logs?messageId=${id}`, { token: t.token })).json<{ logs: { state: string; body: string; responseBody?: string }[] }>();
    const done = logs.logs.find((l) => l.state === "DELIVERED")!;
    expect(equalBytes(fromBase64(done.body), body)).toBe(true);
    expect(fromBase64(done.responseBody!).length).toBe(1_000_000);
    await new Promise((r) => setTimeout(r, 500));
    expect((await hits(key)).length).toBe(1);
    expect((await hits(`${key}-cb`)).length).toBe(1);
  });

  it("the 10 MB maximum with a 10 MB failing response, a callback and a failure callback", async () => {
    const t = await freshTenant();
    const key = uniqueKey("tenmb");
    const size = 10 * 1024 * 1024;
    const body = pattern(size);
    const id = await publishOk(dest(`${key}/big-fail/${size}`), {
      token: t.token,
      body,
      headers: {
        "upstash-retries": "0",
        "upstash-callback": dest(`${key}-cb/ok`),
        "upstash-failure-callback": dest(`${key}-fcb/ok`),
      },
    });
    // Both callbacks carry 10 MB twice in base64 (27 MB of JSON each), all built on one runtime thread: on the test
    // machine this took about 27 s on most runs and more than 60 s on a few (the code before 2026-12-03 too).
    const [fcb] = await waitForHits(`${key}-fcb`, 1, 120_000);
    const [cb] = await waitForHits(`${key}-cb`, 1, 120_000);
    for (const hit of [cb, fcb]) {
      const payload = JSON.parse(new TextDecoder().decode(fromBase64(hit.body))) as CallbackBody;
      expect(payload.status).toBe(500);
      expect(equalBytes(fromBase64(payload.sourceBody), body)).toBe(true);
      expect(equalBytes(fromBase64(payload.body), new Uint8Array(size).fill(0x62))).toBe(true);
    }
    expect(await states(id, t.token)).toEqual(["CREATED", "ACTIVE", "ERROR", "FAILED"]);
    const dlq = await (await api(`/v2/dlq?messageId=${id}`, { token: t.token })).json<{ messages: Record<string, unknown>[] }>();
    expect(dlq.messages.length).toBe(1);
    expect(dlq.messages[0].responseStatus).toBe(500);
    // A list page carries at most 1 MiB of each body, and says so (memory cap); the entry itself has them whole.
    expect((dlq.messages[0].responseBody as string).length).toBe(1024 * 1024);
    expect(dlq.messages[0].responseBodyTruncated).toBe(true);
    expect(dlq.messages[0].responseBodySize).toBe(size);
    expect(dlq.messages[0].bodyTruncated).toBe(true);
    const one = await (await api(`/v2/dlq/${dlq.messages[0].dlqId}`, { token: t.token })).json<Record<string, unknown>>();
    expect((one.responseBody as string).length).toBe(size);
    expect(equalBytes(fromBase64(one.bodyBase64 as string), body)).toBe(true);
    // One byte over the maximum is refused before anything is stored.
    const over = await api(`/v2/publish/${dest(`${key}/ok`)}`, { method: "POST", token: t.token, body: new Uint8Array(size + 1) });
    expect(over.status).toBe(413);
  }, 200_000);

  it("MAX_MESSAGE_SIZE raised to 50 MB: a 50 MB body is stored in R2 and delivered", async () => {
    const t = await freshTenant();
    const size = 50 * 1024 * 1024;
    const key = uniqueKey("fifty");
    const big = { ...env, MAX_MESSAGE_SIZE: String(size) };
    const ctx = createExecutionContext();
    const res = await worker.fetch(
      new Request(`${BASE}/v2/publish/${dest(`${key}/ok`)}`, {
        method: "POST",
        body: pattern(size),
        // A lost connection or a timeout on a slow machine is retried within the wait, not 2.5 minutes later.
        headers: { authorization: `Bearer ${t.token}`, "upstash-retry-delay": "2000" },
      }) as Request<unknown, IncomingRequestCfProperties>,
      big,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(200);
    const { messageId } = await res.json<{ messageId: string }>();
    const row = await messageRow(messageId);
    expect((await env.BODIES.head(row!.body_ref!))?.size).toBe(size);
    const [hit] = await waitForHits(key, 1, 150_000);
    expect(hit.size).toBe(size);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", pattern(size)));
    expect(hit.sha256).toBe([...digest].map((b) => b.toString(16).padStart(2, "0")).join(""));
    expect(await states(messageId, t.token)).toContain("DELIVERED");
  }, 200_000);

  it("a small body stays in its row", async () => {
    const t = await freshTenant();
    const id = await publishOk(dest(`${uniqueKey("small")}/ok`), { token: t.token, body: "hello", headers: { "upstash-delay": "1h" } });
    expect(await messageRow(id)).toMatchObject({ no_blob: 0, body_ref: null });
  });

  it("objects are per tenant and shared by rows with the same bytes; pruning deletes them with the last row", async () => {
    const a = await freshTenant();
    const b = await freshTenant();
    const body = pattern(40_000);
    const key = uniqueKey("prune");
    const first = await publishOk(dest(`${key}/ok`), { token: a.token, body });
    const second = await publishOk(dest(`${key}/ok`), { token: a.token, body });
    const theirs = await publishOk(dest(`${key}/ok`), { token: b.token, body, headers: { "upstash-delay": "1h" } });
    await waitForHits(key, 2);
    await waitFor("both delivered", async () => (await states(second, a.token)).includes("DELIVERED") && (await states(first, a.token)).includes("DELIVERED"));
    const refA = (await messageRow(first))!.body_ref!;
    expect((await messageRow(second))!.body_ref).toBe(refA);
    const refB = (await messageRow(theirs))!.body_ref!;
    expect(refB).not.toBe(refA);
    expect(refB.startsWith(`${b.tenantId}/`)).toBe(true);

    // A schedule of tenant A with the same bytes still refers to the object after both messages are pruned.
    const sched = await api(`/v2/schedules/${dest(`${key}/ok`)}`, { method: "POST", token: a.token, body, headers: { "upstash-cron": "1 1 1 1 1" } });
    const { scheduleId } = await sched.json<{ scheduleId: string }>();
    const expired = await expire([first, second]);
    expect(await messageRow(expired[0])).not.toBeNull();
    await pruneAll();
    expect(await messageRow(expired[0])).toBeNull();
    expect(await messageRow(expired[1])).toBeNull();
    expect(await env.BODIES.head(refA)).not.toBeNull();
    const s = await (await api(`/v2/schedules/${scheduleId}`, { token: a.token })).json<{ bodyBase64: string }>();
    expect(equalBytes(fromBase64(s.bodyBase64), body)).toBe(true);

    // Without the schedule, the next prune that sees the key deletes the object; B's copy stays.
    expect((await api(`/v2/schedules/${scheduleId}`, { method: "DELETE", token: a.token })).status).toBe(200);
    const third = await publishOk(dest(`${key}/ok`), { token: a.token, body });
    await waitFor("the third delivered", async () => (await states(third, a.token)).includes("DELIVERED"));
    const [oldThird] = await expire([third]);
    await pruneAll();
    expect(await messageRow(oldThird)).toBeNull();
    expect(await env.BODIES.head(refA)).toBeNull();
    expect(await env.BODIES.head(refB)).not.toBeNull();
    const read = await (await api(`/v2/messages/${theirs}`, { token: b.token })).json<{ bodyBase64: string }>();
    expect(equalBytes(fromBase64(read.bodyBase64), body)).toBe(true);
  });

  it("the bucket walk deletes an object no row refers to (a crash between its put and its row), never a used one", async () => {
    const t = await freshTenant();
    const orphan = `${t.tenantId}/${"0".repeat(64)}`;
    await env.BODIES.put(orphan, pattern(20_000));
    const body = pattern(30_000);
    const id = await publishOk(dest(`${uniqueKey("walk")}/ok`), { token: t.token, body, headers: { "upstash-delay": "1h" } });
    const used = (await messageRow(id))!.body_ref!;
    // Fresh objects are left alone (their row may not be written yet) ...
    expect(await collectOrphans(env as Env, Date.now(), `${t.tenantId}/`)).toBe(0);
    expect(await env.BODIES.head(orphan)).not.toBeNull();
    // ... and once they are old, only the one no row refers to goes.
    expect(await collectOrphans(env as Env, Date.now() + 2 * 3_600_000, `${t.tenantId}/`)).toBe(1);
    expect(await env.BODIES.head(orphan)).toBeNull();
    expect(await env.BODIES.head(used)).not.toBeNull();
    // The whole-bucket walk keeps its place between sweeps.
    await sweepAll(env, Date.now());
    const cursor = await env.DB.prepare("SELECT value FROM sweeper_state WHERE name = 'r2_cursor'").first<{ value: string }>();
    expect(cursor).not.toBeNull();
  });
});
