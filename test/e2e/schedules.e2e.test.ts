/**
 * End-to-end: schedules through the official `@upstash/qstash` SDK against a real `npm run dev` server
 * (contract §2.7, §1.8, §4.1). Covers create, get, list, pause and resume (the SDK uses PATCH), upsert by
 * schedule id, delete, cron validation, and one real fire of a `* * * * *` schedule that is received, verified
 * and found in the logs.
 */
import { Client, type Log, QstashError, Receiver, type Schedule } from "@upstash/qstash";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Destination, type Hit, startDestination } from "../support/destination";
import { USER1, bodyText, hitsFor, sleep, uniqueKey, waitFor } from "./helpers";
import { type DevServer, showServerOnFailure, startServer } from "./server";

/** Log entries carry `scheduleId` on the wire (contract §2.6); the SDK's `Log` type does not declare it. */
type ScheduleLog = Log & { scheduleId?: string };

let server: DevServer;
let dest: Destination;
let client: Client;
const receiver = new Receiver({
  currentSigningKey: USER1.currentSigningKey,
  nextSigningKey: USER1.nextSigningKey,
});

/** A schedule id no other test or run uses. */
function scheduleIdFor(label: string): string {
  return uniqueKey(`e2e-${label}`);
}

/** The next time (Unix ms) the UTC wall clock reads `hour:minute`, strictly after `after`. */
function nextDailyUtc(hour: number, minute: number, after: number): number {
  const d = new Date(after);
  const today = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), hour, minute);
  return today > after ? today : today + 24 * 60 * 60 * 1000;
}

/** The schedule in the list with this id, or undefined. */
async function listed(scheduleId: string): Promise<Schedule | undefined> {
  return (await client.schedules.list()).find((s) => s.scheduleId === scheduleId);
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

describe("schedule management", () => {
  it("create, get, list, pause, resume and delete a schedule with every stored setting", async () => {
    const key = uniqueKey("sched");
    const url = `${dest.base}/${key}/ok`;
    const callback = `${dest.base}/${key}-cb/ok`;
    const failureCallback = `${dest.base}/${key}-fcb/ok`;
    const scheduleId = scheduleIdFor("crud");
    const flowKey = uniqueKey("sched-flow");
    const label = uniqueKey("sched-label");
    const payload = JSON.stringify({ report: "daily" });
    // 04:30 UTC once a day: it cannot fire during the test unless the run straddles exactly that minute.
    const cron = "30 4 * * *";

    const before = Date.now();
    const created = await client.schedules.create({
      destination: url,
      cron,
      body: payload,
      headers: { "Content-Type": "application/json", "X-Custom": "abc" },
      retries: 2,
      retryDelay: "1000 * retried",
      delay: 30,
      timeout: 5,
      callback,
      failureCallback,
      flowControl: { key: flowKey, parallelism: 2, rate: 5, period: 10 },
      label,
      scheduleId,
    });
    const after = Date.now();
    expect(created).toEqual({ scheduleId });

    const schedule = await client.schedules.get(scheduleId);
    expect(schedule.scheduleId).toBe(scheduleId);
    expect(schedule.cron).toBe(cron);
    expect(schedule.destination).toBe(url);
    expect(schedule.method).toBe("POST");
    expect(schedule.isPaused).toBe(false);
    // Exactly the forwarded set: Content-Type and the caller's header, no Upstash-* configuration.
    expect(schedule.header).toStrictEqual({ "Content-Type": ["application/json"], "X-Custom": ["abc"] });
    expect(schedule.body).toBe(payload);
    expect(schedule.bodyBase64).toBeUndefined();
    expect(schedule.retries).toBe(2);
    expect(schedule.retryDelayExpression).toBe("1000 * retried");
    expect(schedule.delay).toBe(30);
    expect(schedule.callback).toBe(callback);
    expect(schedule.failureCallback).toBe(failureCallback);
    expect(schedule.flowControlKey).toBe(flowKey);
    expect(schedule.parallelism).toBe(2);
    expect(schedule.rate).toBe(5);
    expect(schedule.period).toBe(10);
    expect(schedule.label).toBe(label);
    expect(schedule.labels).toEqual([label]);
    expect(schedule.createdAt).toBeGreaterThanOrEqual(before - 1_000);
    expect(schedule.createdAt).toBeLessThanOrEqual(after + 1_000);
    // The next fire is the next 04:30 UTC: a whole minute, in the future.
    expect(schedule.nextScheduleTime).toBe(nextDailyUtc(4, 30, after));
    expect((schedule.nextScheduleTime ?? 0) % 60_000).toBe(0);
    expect(schedule.lastScheduleTime).toBeUndefined();
    expect(schedule.lastScheduleStates).toBeUndefined();

    // The list carries the same object.
    const inList = await listed(scheduleId);
    expect(inList).toBeDefined();
    expect(inList).toMatchObject({
      scheduleId,
      cron,
      destination: url,
      isPaused: false,
      retries: 2,
      header: { "Content-Type": ["application/json"], "X-Custom": ["abc"] },
      nextScheduleTime: schedule.nextScheduleTime,
    });

    // Pause (the SDK sends PATCH) is visible at once, and pausing twice is fine.
    await client.schedules.pause({ schedule: scheduleId });
    expect((await client.schedules.get(scheduleId)).isPaused).toBe(true);
    await client.schedules.pause({ schedule: scheduleId });
    expect((await client.schedules.get(scheduleId)).isPaused).toBe(true);
    expect((await listed(scheduleId))?.isPaused).toBe(true);

    // The spec's POST form works as well as the SDK's PATCH (D5).
    const viaPost = (action: "pause" | "resume") =>
      fetch(`${server.url}/v2/schedules/${scheduleId}/${action}`, {
        method: "POST",
        headers: { authorization: `Bearer ${USER1.token}` },
      });
    const postResume = await viaPost("resume");
    expect(postResume.status).toBe(200);
    expect((await client.schedules.get(scheduleId)).isPaused).toBe(false);
    const postPause = await viaPost("pause");
    expect(postPause.status).toBe(200);
    expect((await client.schedules.get(scheduleId)).isPaused).toBe(true);

    await client.schedules.resume({ schedule: scheduleId });
    const resumed = await client.schedules.get(scheduleId);
    expect(resumed.isPaused).toBe(false);
    expect(resumed.nextScheduleTime).toBe(nextDailyUtc(4, 30, Date.now()));
    // Everything else is unchanged by pause and resume.
    expect(resumed.header).toStrictEqual(schedule.header);
    expect(resumed.body).toBe(payload);
    expect(resumed.retries).toBe(2);

    await client.schedules.delete(scheduleId);
    await expect(client.schedules.get(scheduleId)).rejects.toMatchObject({ status: 404 });
    expect(await listed(scheduleId)).toBeUndefined();
    // A second delete succeeds (deletes are idempotent) and changes nothing; pause or resume of the removed
    // schedule is a 404.
    await client.schedules.delete(scheduleId);
    await expect(client.schedules.get(scheduleId)).rejects.toMatchObject({ status: 404 });
    await expect(client.schedules.pause({ schedule: scheduleId })).rejects.toMatchObject({ status: 404 });
    await expect(client.schedules.resume({ schedule: scheduleId })).rejects.toMatchObject({ status: 404 });
  });

  it("a create with an existing schedule id replaces every setting but keeps the paused flag", async () => {
    const key = uniqueKey("upsert");
    const scheduleId = scheduleIdFor("upsert");
    const first = await client.schedules.create({
      destination: `${dest.base}/${key}/ok`,
      cron: "0 0 1 1 *",
      body: JSON.stringify({ version: 1 }),
      headers: { "X-Old": "1" },
      retries: 4,
      delay: 60,
      callback: `${dest.base}/${key}-cb/ok`,
      flowControl: { key: uniqueKey("upsert-flow"), parallelism: 1 },
      label: "old-label",
      scheduleId,
    });
    expect(first.scheduleId).toBe(scheduleId);
    const original = await client.schedules.get(scheduleId);
    // The SDK adds Content-Type: application/json when the caller sets none.
    expect(original.header).toStrictEqual({ "Content-Type": ["application/json"], "X-Old": ["1"] });
    expect(original.nextScheduleTime).toBe(Date.UTC(new Date().getUTCFullYear() + 1, 0, 1));
    await client.schedules.pause({ schedule: scheduleId });

    const newUrl = `${dest.base}/${key}/status/204`;
    const second = await client.schedules.create({
      destination: newUrl,
      cron: "15 3 * * *",
      body: "plain text",
      headers: { "Content-Type": "text/plain", "X-New": "2" },
      retries: 0,
      method: "PUT",
      scheduleId,
    });
    expect(second.scheduleId).toBe(scheduleId);

    const replaced = await client.schedules.get(scheduleId);
    expect(replaced.scheduleId).toBe(scheduleId);
    expect(replaced.destination).toBe(newUrl);
    expect(replaced.cron).toBe("15 3 * * *");
    expect(replaced.method).toBe("PUT");
    expect(replaced.body).toBe("plain text");
    expect(replaced.header).toStrictEqual({ "Content-Type": ["text/plain"], "X-New": ["2"] });
    expect(replaced.retries).toBe(0);
    // Settings the second create left out are gone, not merged.
    expect(replaced.delay).toBeUndefined();
    expect(replaced.callback).toBeUndefined();
    expect(replaced.flowControlKey).toBeUndefined();
    expect(replaced.label).toBeUndefined();
    expect(replaced.labels).toBeUndefined();
    // The paused flag survives an upsert (contract choice, §2.7).
    expect(replaced.isPaused).toBe(true);

    // A re-create without a body clears the body.
    await client.schedules.create({ destination: newUrl, cron: "15 3 * * *", scheduleId });
    const emptied = await client.schedules.get(scheduleId);
    expect(emptied.body).toBeUndefined();
    expect(emptied.bodyBase64).toBeUndefined();
    // The SDK's default Content-Type is all that is forwarded now.
    expect(emptied.header).toStrictEqual({ "Content-Type": ["application/json"] });

    // Still one schedule under that id.
    const all = await client.schedules.list();
    expect(all.filter((s) => s.scheduleId === scheduleId)).toHaveLength(1);

    // A create without an id always makes a new scd_… schedule.
    const a = await client.schedules.create({ destination: `${dest.base}/${key}/ok`, cron: "0 0 1 1 *" });
    const b = await client.schedules.create({ destination: `${dest.base}/${key}/ok`, cron: "0 0 1 1 *" });
    expect(a.scheduleId).toMatch(/^scd_/);
    expect(b.scheduleId).toMatch(/^scd_/);
    expect(a.scheduleId).not.toBe(b.scheduleId);

    for (const id of [scheduleId, a.scheduleId, b.scheduleId]) await client.schedules.delete(id);
    for (const id of [scheduleId, a.scheduleId, b.scheduleId]) {
      await expect(client.schedules.get(id)).rejects.toMatchObject({ status: 404 });
    }
    // Nothing fired meanwhile.
    expect(hitsFor(dest, key)).toHaveLength(0);
  });

  it("a schedule can target a URL group, which cannot be deleted while the schedule exists", async () => {
    const key = uniqueKey("schedgroup");
    const group = uniqueKey("e2e-schedgroup");
    await client.urlGroups.addEndpoints({ name: group, endpoints: [{ url: `${dest.base}/${key}/ok` }] });
    const { scheduleId } = await client.schedules.create({ destination: group, cron: "0 0 1 1 *", body: "to the group" });
    expect(scheduleId).toMatch(/^scd_/);
    const schedule = await client.schedules.get(scheduleId);
    expect(schedule.destination).toBe(group);
    expect(schedule.body).toBe("to the group");

    // Deleting the group under the schedule is refused (§2.7); both still exist afterwards.
    await expect(client.urlGroups.delete(group)).rejects.toMatchObject({ status: 400 });
    expect((await client.urlGroups.get(group)).name).toBe(group);
    await client.schedules.delete(scheduleId);
    await client.urlGroups.delete(group);
    await expect(client.urlGroups.get(group)).rejects.toMatchObject({ status: 404 });

    // A schedule to a group that does not exist is refused.
    await expect(client.schedules.create({ destination: group, cron: "0 0 1 1 *" })).rejects.toMatchObject({ status: 404 });
  });

  it("a schedule create repeated with the same deduplication id answers 202 with the original schedule", async () => {
    const key = uniqueKey("scheddedup");
    const destination = `${dest.base}/${key}/ok`;
    // The SDK has no option for it, but passes Upstash-* headers through unprefixed.
    const dedupId = uniqueKey("sched-dedup");
    const headers = { "Upstash-Deduplication-Id": dedupId };
    const first = await client.schedules.create({ destination, cron: "0 0 1 1 *", headers });
    try {
      expect(first.scheduleId).toMatch(/^scd_/);
      // The repeat deduplicates the create call itself: same id back, nothing stored or changed.
      const second = await client.schedules.create({ destination, cron: "15 3 * * *", headers });
      expect(second.scheduleId).toBe(first.scheduleId);
      expect((await client.schedules.get(first.scheduleId)).cron).toBe("0 0 1 1 *");
      // On the wire the repeat is a 202 (§4.10).
      const raw = await fetch(`${server.url}/v2/schedules/${destination}`, {
        method: "POST",
        headers: { authorization: `Bearer ${USER1.token}`, "upstash-cron": "0 0 1 1 *", "upstash-deduplication-id": dedupId },
      });
      expect(raw.status).toBe(202);
      expect(await raw.json()).toMatchObject({ scheduleId: first.scheduleId });
      const mine = (await client.schedules.list()).filter((x) => x.destination === destination);
      expect(mine.map((x) => x.scheduleId)).toEqual([first.scheduleId]);
    } finally {
      for (const x of (await client.schedules.list()).filter((y) => y.destination === destination)) {
        await client.schedules.delete(x.scheduleId);
      }
    }
  });

  it("a bad cron expression or schedule id is rejected with a 400 naming the header", async () => {
    const key = uniqueKey("badcron");
    const destination = `${dest.base}/${key}/ok`;
    for (const cron of ["not a cron", "* * * *", "61 * * * *", "* * * * * *"]) {
      const attempt = client.schedules.create({ destination, cron });
      await expect(attempt, `cron "${cron}"`).rejects.toBeInstanceOf(QstashError);
      await expect(attempt, `cron "${cron}"`).rejects.toMatchObject({ status: 400 });
      await expect(attempt, `cron "${cron}"`).rejects.toThrow(/Upstash-Cron/);
    }
    const badId = client.schedules.create({ destination, cron: "0 0 1 1 *", scheduleId: "bad id!" });
    await expect(badId).rejects.toMatchObject({ status: 400 });
    await expect(badId).rejects.toThrow(/Upstash-Schedule-Id/);

    // None of them was stored.
    const all = await client.schedules.list();
    expect(all.filter((s) => s.destination === destination)).toEqual([]);
  });
});

describe("schedule fire", () => {
  it(
    "a * * * * * schedule fires at the next minute boundary with a signed request carrying Upstash-Schedule-Id",
    { timeout: 120_000 },
    async () => {
      const key = uniqueKey("fire");
      const url = `${dest.base}/${key}/ok`;
      const scheduleId = scheduleIdFor("fire");
      const payload = JSON.stringify({ tick: true });
      const { scheduleId: created } = await client.schedules.create({
        destination: url,
        cron: "* * * * *",
        body: payload,
        headers: { "Content-Type": "application/json", "X-Fired-By": "schedule" },
        retries: 0,
        scheduleId,
      });
      expect(created).toBe(scheduleId);

      try {
        const armed = await client.schedules.get(scheduleId);
        const createdAt = armed.createdAt;
        // The next fire is the first whole minute after creation.
        expect(armed.nextScheduleTime).toBe(Math.floor(createdAt / 60_000) * 60_000 + 60_000);

        // Up to a minute until the boundary, plus some slack; progress is printed every 10 s.
        const started = Date.now();
        let lastProgress = started;
        const hit = await waitFor<Hit>(
          `a request with Upstash-Schedule-Id ${scheduleId}`,
          () => {
            const now = Date.now();
            if (now - lastProgress >= 10_000) {
              lastProgress = now;
              console.log(`[e2e] waiting for schedule ${scheduleId} to fire (${Math.round((now - started) / 1000)} s)`);
            }
            return hitsFor(dest, key).find((h) => h.headers["upstash-schedule-id"] === scheduleId);
          },
          75_000,
          100,
        );
        console.log(`[e2e] schedule ${scheduleId} fired after ${Math.round((hit.time - started) / 1000)} s`);

        // It arrived within 2 s after a minute boundary, measured at the destination on the same clock.
        expect(hit.time % 60_000).toBeLessThan(2_000);
        const fireMinute = hit.time - (hit.time % 60_000);
        expect(fireMinute).toBe(armed.nextScheduleTime);

        expect(hit.method).toBe("POST");
        expect(bodyText(hit)).toBe(payload);
        expect(hit.headers["content-type"]).toBe("application/json");
        expect(hit.headers["x-fired-by"]).toBe("schedule");
        expect(hit.headers["upstash-retried"]).toBe("0");
        const messageId = hit.headers["upstash-message-id"];
        expect(messageId).toMatch(/^msg_/);
        await expect(
          receiver.verify({ signature: hit.headers["upstash-signature"] ?? "", body: bodyText(hit), url }),
        ).resolves.toBe(true);

        // The logs, filtered by schedule id, show the produced message up to DELIVERED.
        const logs = await waitFor(
          `DELIVERED in the logs of schedule ${scheduleId}`,
          async () => {
            const res = await client.logs({ filter: { scheduleId } });
            return res.logs.some((l) => l.state === "DELIVERED") ? (res.logs as ScheduleLog[]) : undefined;
          },
          10_000,
          200,
        );
        expect(logs.length).toBeGreaterThan(0);
        for (const entry of logs) {
          expect(entry.messageId).toBe(messageId);
          expect(entry.scheduleId).toBe(scheduleId);
          expect(entry.url).toBe(url);
        }
        expect(logs.map((l) => l.state)).toEqual(["DELIVERED", "ACTIVE", "CREATED"]);

        // The schedule records the fire.
        const fired = await waitFor(
          `lastScheduleStates of ${scheduleId} to show SUCCESS`,
          async () => {
            const s = await client.schedules.get(scheduleId);
            return s.lastScheduleStates?.[messageId] === "SUCCESS" ? s : undefined;
          },
          10_000,
          200,
        );
        expect(fired.lastScheduleTime).toBe(fireMinute);
        expect(fired.nextScheduleTime).toBe(fireMinute + 60_000);
        expect(Object.keys(fired.lastScheduleStates ?? {})).toEqual([messageId]);

        // One fire per minute: no duplicate arrives for the same boundary.
        await sleep(1_000);
        const sameMinute = hitsFor(dest, key).filter((h) => h.time - (h.time % 60_000) === fireMinute);
        expect(sameMinute).toHaveLength(1);
      } finally {
        await client.schedules.delete(scheduleId);
      }
      await expect(client.schedules.get(scheduleId)).rejects.toMatchObject({ status: 404 });
    },
  );
});
