import { env, runDurableObjectAlarm } from "cloudflare:test";
import { shardEnv, tenantShard } from "../../src/db/shards";
import type { Env } from "../../src/env";
import { describe, expect, it } from "vitest";
import { sweepAll } from "../../src/delivery/sweeper";
import { timerStub } from "../../src/objects/schedule-timer";
import { api, dbOf, dest, freshTenant, hits, uniqueKey, waitForHits } from "./helpers";

async function create(token: string, destination: string, headers: Record<string, string>, body?: string) {
  return api(`/v2/schedules/${destination}`, { method: "POST", token, headers, body });
}

/** Makes the schedule due now and rings its timer. */
async function ring(tenantId: string, id: string) {
  await shardEnv(env as Env, await tenantShard(env as Env, tenantId)).DB.prepare("UPDATE schedules SET next_schedule_time = ?3 WHERE tenant_id = ?1 AND id = ?2")
    .bind(tenantId, id, Date.now() - 1)
    .run();
  return runDurableObjectAlarm(timerStub(env, tenantId, id));
}

describe("/v2/schedules", () => {
  it("creates, reads, lists, fires with the schedule header, pauses, resumes and deletes", async () => {
    const t = await freshTenant();
    const key = uniqueKey("sc");
    const res = await create(t.token, dest(`${key}/ok`), {
      "upstash-cron": "*/5 * * * * ",
      "content-type": "text/plain",
      "upstash-forward-x-a": "1",
      "upstash-retries": "2",
      "upstash-timeout": "5s",
      "upstash-delay": "0s",
      "upstash-label": "nightly",
      "upstash-callback": dest(`${key}-cb/ok`),
    }, "tick");
    expect(res.status, await res.clone().text()).toBe(200);
    const { scheduleId } = await res.json<{ scheduleId: string }>();
    expect(scheduleId).toMatch(/^scd_/);
    const got = await (await api(`/v2/schedules/${scheduleId}`, { token: t.token })).json<Record<string, unknown>>();
    expect(got).toMatchObject({
      scheduleId,
      cron: "*/5 * * * *",
      destination: dest(`${key}/ok`),
      method: "POST",
      header: { "Content-Type": ["text/plain"], "X-A": ["1"] },
      body: "tick",
      retries: 2,
      timeout: 5,
      delay: 0,
      isPaused: false,
      label: "nightly",
      callback: dest(`${key}-cb/ok`),
    });
    const next = got.nextScheduleTime as number;
    expect(next % 300_000).toBe(0);
    expect(next).toBeGreaterThan(Date.now());
    // the timer is armed for exactly that time
    expect(await timerStub(env, t.tenantId, scheduleId).alarmTime()).toBe(next);

    expect(await ring(t.tenantId, scheduleId)).toBe(true);
    const [hit] = await waitForHits(key, 1);
    expect(hit.headers["upstash-schedule-id"]).toBe(scheduleId);
    expect(atob(hit.body)).toBe("tick");
    await waitForHits(`${key}-cb`, 1);
    const after = await (await api(`/v2/schedules/${scheduleId}`, { token: t.token })).json<Record<string, unknown>>();
    expect(after.lastScheduleTime).toBeTypeOf("number");
    expect(Object.values(after.lastScheduleStates as object)).toEqual(["SUCCESS"]);
    const logs = await (await api(`/v2/logs?scheduleId=${scheduleId}`, { token: t.token })).json<{ logs: { scheduleId: string }[] }>();
    expect(logs.logs.length).toBeGreaterThan(0);
    expect(logs.logs.every((l) => l.scheduleId === scheduleId)).toBe(true);

    expect((await api(`/v2/schedules/${scheduleId}/pause`, { method: "PATCH", token: t.token })).status).toBe(200);
    expect((await api(`/v2/schedules/${scheduleId}/pause`, { method: "POST", token: t.token })).status).toBe(200);
    const paused = await (await api(`/v2/schedules/${scheduleId}`, { token: t.token })).json<Record<string, unknown>>();
    expect(paused.isPaused).toBe(true);
    expect(await timerStub(env, t.tenantId, scheduleId).alarmTime()).toBeNull();
    expect((await api(`/v2/schedules/${scheduleId}/resume`, { method: "POST", token: t.token })).status).toBe(200);
    const resumed = await (await api(`/v2/schedules/${scheduleId}`, { token: t.token })).json<Record<string, unknown>>();
    expect(resumed.isPaused).toBe(false);
    expect(await timerStub(env, t.tenantId, scheduleId).alarmTime()).toBe(resumed.nextScheduleTime);

    const list = await (await api(`/v2/schedules`, { token: t.token })).json<{ scheduleId: string }[]>();
    expect(list.map((s) => s.scheduleId)).toEqual([scheduleId]);
    expect((await api(`/v2/schedules/${scheduleId}`, { method: "DELETE", token: t.token })).status).toBe(200);
    expect((await api(`/v2/schedules/${scheduleId}`, { token: t.token })).status).toBe(404);
    // Deletes are idempotent: deleting it again succeeds and changes nothing.
    expect((await api(`/v2/schedules/${scheduleId}`, { method: "DELETE", token: t.token })).status).toBe(200);
    expect((await api(`/v2/schedules/${scheduleId}/pause`, { method: "PATCH", token: t.token })).status).toBe(404);
    expect(await timerStub(env, t.tenantId, scheduleId).alarmTime()).toBeNull();
  });

  it("upserts by Upstash-Schedule-Id: every setting replaced, pause kept, body cleared", async () => {
    const t = await freshTenant();
    const id = uniqueKey("my.sched");
    expect((await create(t.token, dest("up/ok"), { "upstash-cron": "0 * * * *", "upstash-schedule-id": id, "upstash-retries": "5" }, "b")).status).toBe(200);
    await api(`/v2/schedules/${id}/pause`, { method: "PATCH", token: t.token });
    const res = await create(t.token, dest("up2/ok"), { "upstash-cron": "0 0 * * *", "upstash-schedule-id": id, "upstash-forward-x-b": "2" });
    expect(await res.json()).toEqual({ scheduleId: id });
    const got = await (await api(`/v2/schedules/${id}`, { token: t.token })).json<Record<string, unknown>>();
    expect(got).toMatchObject({ cron: "0 0 * * *", destination: dest("up2/ok"), retries: 3, isPaused: true, header: { "X-B": ["2"] } });
    expect("body" in got).toBe(false);
    expect((await api(`/v2/schedules`, { token: t.token })).ok).toBe(true);
  });

  it("fires once per due time even if the timer rings twice, and once after missed fires", async () => {
    // The schedule's own timer rings at every minute boundary; start well clear of one, so that a real fire cannot
    // land inside this test's few hundred milliseconds.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 50_000) await new Promise((r) => setTimeout(r, 61_000 - intoMinute));
    const t = await freshTenant();
    const key = uniqueKey("once");
    const { scheduleId } = await (await create(t.token, dest(`${key}/ok`), { "upstash-cron": "* * * * *" })).json<{ scheduleId: string }>();
    // simulate downtime: the schedule's next fire was 10 minutes ago
    await dbOf(t).prepare("UPDATE schedules SET next_schedule_time = ?2 WHERE id = ?1").bind(scheduleId, Date.now() - 600_000).run();
    await runDurableObjectAlarm(timerStub(env, t.tenantId, scheduleId));
    await runDurableObjectAlarm(timerStub(env, t.tenantId, scheduleId)); // next fire is in the future: nothing
    await waitForHits(key, 1);
    await new Promise((r) => setTimeout(r, 300));
    expect((await hits(key)).length).toBe(1);
    const got = await (await api(`/v2/schedules/${scheduleId}`, { token: t.token })).json<{ nextScheduleTime: number }>();
    expect(got.nextScheduleTime).toBeGreaterThan(Date.now());
  });

  it("the sweeper re-arms a schedule whose timer was lost", async () => {
    const t = await freshTenant();
    const key = uniqueKey("lostt");
    const { scheduleId } = await (await create(t.token, dest(`${key}/ok`), { "upstash-cron": "* * * * *" })).json<{ scheduleId: string }>();
    await timerStub(env, t.tenantId, scheduleId).disarm();
    await dbOf(t).prepare("UPDATE schedules SET next_schedule_time = ?2 WHERE id = ?1").bind(scheduleId, Date.now() - 120_000).run();
    const report = await sweepAll(env, Date.now());
    expect(report.rearmedSchedules).toBeGreaterThanOrEqual(1);
    await waitForHits(key, 1);
  });

  it("refuses bad input with a 400 naming the problem and stores nothing", async () => {
    const t = await freshTenant();
    const cases: [Record<string, string>, RegExp][] = [
      [{}, /Upstash-Cron is required/],
      [{ "upstash-cron": "* * *" }, /five/],
      [{ "upstash-cron": "CRON_TZ=Nowhere/City * * * * *" }, /time zone/],
      [{ "upstash-cron": "* * * * *", "upstash-schedule-id": "bad id!" }, /Upstash-Schedule-Id/],
      [{ "upstash-cron": "* * * * *", "upstash-not-before": "1700000000" }, /Not-Before/],
      [{ "upstash-cron": "* * * * *", "upstash-delay": "400d" }, /Upstash-Delay/],
      [{ "upstash-cron": "* * * * *", "upstash-retries": "x" }, /Upstash-Retries/],
    ];
    for (const [headers, pattern] of cases) {
      const res = await create(t.token, dest("bad/ok"), headers);
      expect(res.status, JSON.stringify(headers)).toBe(400);
      expect((await res.json<{ error: string }>()).error).toMatch(pattern);
    }
    expect(await (await api(`/v2/schedules`, { token: t.token })).json()).toEqual([]);
  });

  it("tenants see only their own schedules", async () => {
    const a = await freshTenant();
    const b = await freshTenant();
    const { scheduleId } = await (await create(a.token, dest("iso/ok"), { "upstash-cron": "* * * * *" })).json<{ scheduleId: string }>();
    expect((await api(`/v2/schedules/${scheduleId}`, { token: b.token })).status).toBe(404);
    // B's delete is the idempotent 200 of a schedule B does not have; A's schedule stays.
    expect((await api(`/v2/schedules/${scheduleId}`, { method: "DELETE", token: b.token })).status).toBe(200);
    expect((await api(`/v2/schedules/${scheduleId}`, { token: a.token })).status).toBe(200);
    expect((await api(`/v2/schedules/${scheduleId}/pause`, { method: "PATCH", token: b.token })).status).toBe(404);
    expect(await (await api(`/v2/schedules`, { token: b.token })).json()).toEqual([]);
    expect((await api(`/v2/schedules/${scheduleId}`, { method: "DELETE", token: a.readOnlyToken })).status).toBe(403);
  });
});
