/**
 * Push-back: past MAX_INFLIGHT_PUBLISHES publishes under way in an isolate, a publish is refused at once with 503,
 * Retry-After and a JSON error, and nothing of it is stored; the accepted ones are stored and delivered, management
 * calls are not refused, and the slots come back once the publishes are answered.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { noteQueueMetrics, queueLagMs } from "../../src/delivery/pressure";
import { BASE, DEV_TOKEN, api, dest, hits, uniqueKey, waitFor } from "./helpers";

describe("push-back", () => {
  it("refuses publishes past MAX_INFLIGHT_PUBLISHES with 503 and Retry-After, storing nothing of them", async () => {
    const tight = { ...env, MAX_INFLIGHT_PUBLISHES: "3" };
    const key = uniqueKey("pushback");
    const call = async (path: string, init: RequestInit = {}) => {
      const ctx = createExecutionContext();
      const res = await worker.fetch(
        new Request(`${BASE}${path}`, { ...init, headers: { authorization: `Bearer ${DEV_TOKEN}`, ...(init.headers ?? {}) } }) as Request<unknown, IncomingRequestCfProperties>,
        tight,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      return res;
    };
    const publishes = Array.from({ length: 20 }, (_, i) => call(`/v2/publish/${dest(`${key}/ok`)}`, { method: "POST", body: `n${i}` }));
    // A management call made meanwhile is not refused.
    const management = call("/v2/queues");
    const answers = await Promise.all(publishes);
    expect((await management).status).toBe(200);
    const refused = answers.filter((r) => r.status === 503);
    const accepted = answers.filter((r) => r.status === 200);
    expect(refused.length + accepted.length).toBe(20);
    expect(accepted.length).toBe(3);
    for (const r of refused) {
      expect(r.headers.get("retry-after")).toBe("1");
      expect((await r.json<{ error: string }>()).error).toMatch(/at capacity.*MAX_INFLIGHT_PUBLISHES.*nothing was stored/);
    }
    // The accepted ones are delivered, and only they: a refused publish left nothing behind.
    const ids = await Promise.all(accepted.map(async (r) => (await r.json<{ messageId: string }>()).messageId));
    await waitFor("the accepted deliveries", async () => ((await hits(key)).length >= 3 ? true : undefined));
    expect((await hits(key)).map((h) => h.headers["upstash-message-id"]).sort()).toEqual([...ids].sort());
    // The slots are free again.
    expect((await call(`/v2/publish/${dest(`${key}/ok`)}`, { method: "POST", body: "after" })).status).toBe(200);
    // Stored messages to this URL: the 3 accepted and the one after, nothing of the 17 refused.
    const logs = await (await api(`/v2/logs?url=${encodeURIComponent(dest(`${key}/ok`))}`)).json<{ logs: { messageId: string }[] }>();
    expect(new Set(logs.logs.map((l) => l.messageId)).size).toBe(4);
  });

  it("refuses publishes while the deliveries queue lags past MAX_QUEUE_LAG, and only while the sighting is fresh", async () => {
    const key = uniqueKey("lag");
    const publish = async (extra: Record<string, string>) => {
      const ctx = createExecutionContext();
      const res = await worker.fetch(
        new Request(`${BASE}/v2/publish/${dest(`${key}/ok`)}`, { method: "POST", body: "x", headers: { authorization: `Bearer ${DEV_TOKEN}` } }) as Request<unknown, IncomingRequestCfProperties>,
        { ...env, ...extra },
        ctx,
      );
      await waitOnExecutionContext(ctx);
      return res;
    };
    // A hand-off's answer as Miniflare's broker gives it (the timestamp as an ISO string): 3 s behind.
    const now = Date.now();
    noteQueueMetrics({ metadata: { metrics: { backlogCount: 40, backlogBytes: 4000, oldestMessageTimestamp: new Date(now - 3_000).toISOString() } } }, now);
    expect(queueLagMs(now + 10)).toBeGreaterThanOrEqual(2_900);
    const refused = await publish({ MAX_QUEUE_LAG: "1s" });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect((await refused.json<{ error: string }>()).error).toMatch(/deliveries lag \d+ ms behind, MAX_QUEUE_LAG/);
    // Off (the default on a deployment): accepted whatever the lag.
    expect((await publish({})).status).toBe(200);
    // An empty backlog, or a sighting older than half a second, refuses nothing.
    noteQueueMetrics({ metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } } });
    expect(queueLagMs()).toBe(0);
    noteQueueMetrics({ metadata: { metrics: { backlogCount: 5, backlogBytes: 1, oldestMessageTimestamp: new Date(Date.now() - 5_000) } } });
    expect(queueLagMs()).toBeGreaterThan(4_000);
    await new Promise((r) => setTimeout(r, 600));
    expect(queueLagMs()).toBe(0);
    expect((await publish({ MAX_QUEUE_LAG: "1s" })).status).toBe(200);
  });
});
