/**
 * A message's log grows with its attempts. Past LOG_ROW_MAX (1 MiB of JSON) a new entry keeps its response body in
 * R2 and at most 1 KiB of response headers, so the row stays far below D1's 2 MB limit however many attempts it
 * gets; reading the log returns the same bytes either way.
 */
import { createMessageBatch, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { LOG_ROW_MAX } from "../../src/db/logs";
import type { DeliveryTask } from "../../src/env";
import worker from "../../src/index";
import { api, dbOf, dest, freshTenant, makeDue, publishOk, uniqueKey, waitFor } from "./helpers";

async function deliverNow(t: { shard: number }, id: string): Promise<void> {
  await makeDue(dbOf(t), [id]);
  const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: `task-${id}`, timestamp: new Date(), attempts: 1, body: { ids: [id] } }]);
  await worker.queue(batch, env);
}

const lastEntry = async (t: { shard: number }, id: string) =>
  JSON.parse(String(await dbOf(t).prepare("SELECT log ->> '$[#-1]' AS e FROM messages WHERE id = ?1").bind(id).first("e"))) as { s: string; b?: string; r?: string; h?: unknown };

describe("the size of a message's log", () => {
  it("keeps a small response body in the log until the log passes LOG_ROW_MAX, then in R2, with the same bytes", async () => {
    const t = await freshTenant();
    const key = uniqueKey("logsize");
    const small = await publishOk(dest(`${key}/big/2000`), { token: t.token, headers: { "upstash-delay": "1h" } });
    const full = await publishOk(dest(`${key}/big/2000`), { token: t.token, headers: { "upstash-delay": "1h" } });
    // The second message's log already holds entries of earlier attempts worth more than LOG_ROW_MAX.
    await dbOf(t)
      .prepare(`UPDATE messages SET log = json_insert(log, '$[#]', json_object('t', created_at, 'a', created_at, 's', 'ERROR', 'e', hex(zeroblob(?2 / 2)))) WHERE id = ?1`)
      .bind(full, LOG_ROW_MAX + 1000)
      .run();
    await deliverNow(t, small);
    await deliverNow(t, full);
    for (const id of [small, full]) {
      await waitFor(`${id} delivered`, async () => ((await dbOf(t).prepare("SELECT state FROM messages WHERE id = ?1").bind(id).first("state")) === "DELIVERED" ? true : undefined));
    }
    const a = await lastEntry(t, small);
    expect(a.s).toBe("DELIVERED");
    expect(typeof a.b).toBe("string");
    expect(a.r).toBeUndefined();
    const b = await lastEntry(t, full);
    expect(b.s).toBe("DELIVERED");
    expect(b.b).toBeUndefined();
    expect(b.r).toMatch(new RegExp(`\\.${full}$`));
    expect(JSON.stringify(b.h).length).toBeLessThanOrEqual(1024);
    // The logs API answers the same response body for both.
    for (const id of [small, full]) {
      const res = await api(`/v2/logs?messageId=${id}&state=DELIVERED`, { token: t.token });
      const { logs } = await res.json<{ logs: { responseBody?: string }[] }>();
      expect(logs.length).toBe(1);
      expect(atob(logs[0].responseBody!)).toBe("a".repeat(2000));
    }
  });
});
