import { createExecutionContext, env, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { newMessage } from "../../src/core/message";
import { idFloor } from "../../src/core/ids";
import { insertMessage } from "../../src/db/messages";
import { sweepAll } from "../../src/delivery/sweeper";
import worker from "../../src/index";
import { dbOf, dest, freshTenant, plainSpec, hits, uniqueKey, waitFor, waitForHits, waitForState } from "./helpers";

const spec = plainSpec;

/** A message written to D1 exactly as publish does, but never handed to the queue: as if the worker crashed. */
async function orphan(t: { tenantId: string; shard: number }, url: string, dueAgoMs: number, lease: number | null = null) {
  const now = Date.now();
  const tenantId = t.tenantId;
  const db = dbOf(t);
  const m = newMessage(spec, { tenantId, url, body: new TextEncoder().encode("orphan"), callerIp: null, shard: t.shard }, now - dueAgoMs);
  m.leaseUntil = lease;
  await insertMessage(db, m).run();
  if (lease !== null) await db.prepare("UPDATE messages SET lease_until = ?2, state = 'ACTIVE' WHERE id = ?1").bind(m.id, lease).run();
  return m;
}

describe("sweeper", () => {
  it("re-drives a message the queue never got, and one whose attempt lease expired (crash mid-delivery)", async () => {
    const t = await freshTenant();
    const lostKey = uniqueKey("lost");
    const crashKey = uniqueKey("crash");
    const lost = await orphan(t, dest(`${lostKey}/ok`), 60_000);
    const crashed = await orphan(t, dest(`${crashKey}/ok`), 60_000, Date.now() - 1);
    const fresh = await orphan(t, dest(`${uniqueKey("fresh")}/ok`), 0);
    const report = await sweepAll(env, Date.now());
    expect(report.redriven).toBeGreaterThanOrEqual(2);
    await waitForHits(lostKey, 1);
    await waitForHits(crashKey, 1);
    await waitForState(lost.id, "DELIVERED", 10_000, t.token);
    await waitForState(crashed.id, "DELIVERED", 10_000, t.token);
    // not yet stale: left alone (the queue may still hold it)
    const row = await dbOf(t).prepare("SELECT redriven_at FROM messages WHERE id = ?1").bind(fresh.id).first("redriven_at");
    expect(row).toBeNull();
  });

  it("finds a lost message due at once through its walk over recent ids (no index entry on the common path)", async () => {
    const t = await freshTenant();
    const key = uniqueKey("walked");
    // Written as the common path writes it (not in messages_watch); its hand-off was lost.
    const m = await orphan(t, dest(`${key}/ok`), 0);
    expect(await dbOf(t).prepare("SELECT watch FROM messages WHERE id = ?1").bind(m.id).first("watch")).toBe(0);
    // A sweep 40 s later: the walk has passed the id, and the message is past the re-drive delay.
    await sweepAll(env, Date.now() + 40_000, { pruneBudgetMs: 0 });
    expect(await dbOf(t).prepare("SELECT watch FROM messages WHERE id = ?1").bind(m.id).first("watch")).toBe(1);
    await waitForHits(key, 1);
    await waitForState(m.id, "DELIVERED", 10_000, t.token);
  });

  it("leaves a message with a live lease alone, and does not re-drive the same message twice in a row", async () => {
    const t = await freshTenant();
    const key = uniqueKey("live");
    const live = await orphan(t, dest(`${key}/ok`), 60_000, Date.now() + 60_000);
    await sweepAll(env, Date.now());
    await new Promise((r) => setTimeout(r, 300));
    expect(await hits(key)).toEqual([]);
    const lostKey = uniqueKey("once");
    const lost = await orphan(t, dest(`${lostKey}/status/500`), 60_000);
    await dbOf(t).prepare("UPDATE messages SET max_retries = 5, retry_delay_expr = '100000' WHERE id = ?1").bind(lost.id).run();
    await sweepAll(env, Date.now());
    await waitForHits(lostKey, 1);
    await sweepAll(env, Date.now());
    await new Promise((r) => setTimeout(r, 300));
    expect((await hits(lostKey)).length).toBe(1);
    void live;
  });

  it("in dev mode, the first sweep after a restart re-sends messages re-driven minutes ago (the local queue started empty)", async () => {
    const t = await freshTenant();
    const key = uniqueKey("restart");
    const m = await orphan(t, dest(`${key}/ok`), 120_000);
    // Re-driven a minute ago, then the local server restarted and its queue broker lost the id.
    const minuteAgo = Date.now() - 60_000;
    await dbOf(t).prepare("UPDATE messages SET redriven_at = ?2 WHERE id = ?1").bind(m.id, minuteAgo).run();
    const redrivenAt = () => dbOf(t).prepare("SELECT redriven_at FROM messages WHERE id = ?1").bind(m.id).first<number>("redriven_at");
    await sweepAll(env, Date.now());
    expect(await redrivenAt()).toBe(minuteAgo);
    await new Promise((r) => setTimeout(r, 300));
    expect(await hits(key)).toEqual([]);
    await sweepAll(env, Date.now(), { afterRestart: true });
    expect(await redrivenAt()).toBeGreaterThan(minuteAgo);
    await waitForHits(key, 1);
    await waitForState(m.id, "DELIVERED", 10_000, t.token);
  });

  it("prunes finished messages past retention, with their logs and log marks", async () => {
    const t = await freshTenant();
    const longAgo = Date.now() - 400 * 86_400_000;
    // Made 400 days ago (its id says so), finished a minute later: its DELIVERED entry has a log mark of its own.
    const old = await orphan(t, "http://127.0.0.1:1/old", 400 * 86_400_000);
    expect(old.id.startsWith(idFloor(longAgo).slice(0, 8))).toBe(true);
    await dbOf(t)
      .prepare(
        `UPDATE messages SET finished_at = ?2, state = 'DELIVERED', anchor_at = ?2,
           log = json_insert(log, '$[#]', json_object('t', ?2, 'a', ?2, 's', 'DELIVERED')) WHERE id = ?1`,
      )
      .bind(old.id, longAgo + 60_000)
      .run();
    expect(await dbOf(t).prepare("SELECT time FROM log_marks WHERE message_id = ?1").bind(old.id).first("time")).toBe(longAgo + 60_000);
    // Other test files may sweep at the same time, so this checks the rows, not this sweep's counts.
    await sweepAll(env, Date.now(), { rewalk: true });
    expect(await dbOf(t).prepare("SELECT id FROM messages WHERE id = ?1").bind(old.id).first()).toBeNull();
    expect(await dbOf(t).prepare("SELECT time FROM log_marks WHERE message_id = ?1").bind(old.id).first()).toBeNull();
  });

  it("runs from the cron trigger", async () => {
    const t = await freshTenant();
    const key = uniqueKey("cron");
    await orphan(t, dest(`${key}/ok`), 60_000);
    const ctx = createExecutionContext();
    await worker.scheduled({ cron: "* * * * *", scheduledTime: Date.now(), noRetry() {} } as ScheduledController, env, ctx);
    await waitOnExecutionContext(ctx);
    await waitForHits(key, 1);
  });
});

describe("Scheduler Durable Object", () => {
  it("arms the alarm at the earliest due time and hands due ids over in due order", async () => {
    const stub = env.SCHEDULER.get(env.SCHEDULER.idFromName(uniqueKey("sched")));
    const now = Date.now();
    await stub.schedule([
      { id: "b", dueAt: now + 60_000 },
      { id: "a", dueAt: now + 30_000 },
      { id: "c", dueAt: now + 90_000 },
    ]);
    await runInDurableObject(stub, async (_instance, state) => {
      expect(await state.storage.getAlarm()).toBe(now + 30_000);
    });
    // moving an id re-arms the alarm for it
    await stub.schedule([{ id: "c", dueAt: now + 10_000 }]);
    await runInDurableObject(stub, async (_instance, state) => {
      expect(await state.storage.getAlarm()).toBe(now + 10_000);
    });
    expect(await stub.cancel(["a", "zzz"])).toBe(1);
    expect(await stub.pendingCount()).toBe(2);
    // nothing is due yet: the alarm re-arms and keeps both
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await stub.pendingCount()).toBe(2);
  });

  it("flushes many due ids at once through the real queue", async () => {
    const t = await freshTenant();
    const key = uniqueKey("many");
    const ids: string[] = [];
    for (let i = 0; i < 120; i++) ids.push((await orphan(t, dest(`${key}/ok`), 0)).id);
    const stub = env.SCHEDULER.get(env.SCHEDULER.idFromName(uniqueKey("flush")));
    await stub.schedule(ids.map((id) => ({ id, dueAt: Date.now() + 3_600_000 })));
    await runInDurableObject(stub, async (_i, state) => {
      state.storage.sql.exec("UPDATE pending SET due_at = 0");
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await stub.pendingCount()).toBe(0);
    await waitFor("120 deliveries", async () => ((await hits(key)).length >= 120 ? true : undefined), 20_000);
    const seen = new Set((await hits(key)).map((h) => h.headers["upstash-message-id"]));
    expect(seen.size).toBe(120);
  });
});
