/**
 * Delivery under pressure, through the official SDK against `npm run dev`: many attempts on a slow destination run
 * at once, and another tenant's message to a fast destination is not held up by them.
 */
import { Client } from "@upstash/qstash";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Destination, startDestination } from "../support/destination";
import { USER1, USER2, hitsFor, sleep, uniqueKey, waitFor } from "./helpers";
import { type DevServer, showServerOnFailure, startServer } from "./server";

let server: DevServer | undefined;
let dest: Destination;

beforeAll(async () => {
  dest = await startDestination();
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
  await dest?.close();
});
showServerOnFailure(() => server);

/** Publishes `n` messages to `url` through the SDK, `inFlight` at a time. */
async function publishMany(client: Client, url: string, n: number, inFlight = 20): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) {
        next++;
        await client.publish({ url, body: "x", retries: 0 });
      }
    }),
  );
}

/** Waits until `n` requests for `key` have been answered; returns when the last answer went out. */
async function allAnswered(key: string, n: number, timeoutMs: number): Promise<number> {
  return waitFor(
    `${n} answered requests to /${key}/…`,
    () => {
      const done = hitsFor(dest, key).filter((h) => h.endTime !== undefined);
      return done.length >= n ? Math.max(...done.map((h) => h.endTime!)) : undefined;
    },
    timeoutMs,
    50,
  );
}

describe("slow destinations", () => {
  it("100 messages to a destination that answers after 3 s are all answered within 12 s of the publish", async () => {
    const client = new Client({ baseUrl: server!.url, token: USER1.token });
    const key = uniqueKey("slow100");
    const start = Date.now();
    await publishMany(client, `${dest.base}/${key}/sleep/3000`, 100);
    const last = await allAnswered(key, 100, 60_000);
    console.log(`[pressure] 100 × 3 s: all answered ${((last - start) / 1000).toFixed(1)} s after the first publish`);
    expect(last - start).toBeLessThanOrEqual(12_000);
    expect(hitsFor(dest, key).length).toBe(100);
    // Every attempt's outcome is recorded: 100 DELIVERED log entries for that URL.
    await waitFor(
      "100 DELIVERED entries",
      async () => {
        const logs = await client.logs({ filter: { url: `${dest.base}/${key}/sleep/3000`, state: "DELIVERED", count: 1000 } });
        return logs.logs.length === 100 ? true : undefined;
      },
      15_000,
    );
  }, 90_000);

  it("1,000 such messages are all answered within 45 s", async () => {
    const client = new Client({ baseUrl: server!.url, token: USER1.token });
    const key = uniqueKey("slow1000");
    const start = Date.now();
    await publishMany(client, `${dest.base}/${key}/sleep/3000`, 1000);
    const last = await allAnswered(key, 1000, 120_000);
    console.log(`[pressure] 1,000 × 3 s: all answered ${((last - start) / 1000).toFixed(1)} s after the first publish`);
    expect(last - start).toBeLessThanOrEqual(45_000);
    expect(hitsFor(dest, key).length).toBe(1000);
  }, 180_000);
});

describe("fairness between tenants", () => {
  it("while tenant A has 1,000 attempts on a slow destination, tenant B's messages to a fast one arrive within 1 s", async () => {
    const a = new Client({ baseUrl: server!.url, token: USER1.token });
    const b = new Client({ baseUrl: server!.url, token: USER2.token });
    const slow = uniqueKey("fairA");
    const fast = uniqueKey("fairB");
    await publishMany(a, `${dest.base}/${slow}/sleep/15000`, 1000, 40);
    // All of A's attempts are under way: the destination holds 1,000 open requests.
    await waitFor("A's attempts to be under way", () => (hitsFor(dest, slow).length >= 1000 ? true : undefined), 30_000);
    const delays: number[] = [];
    for (let i = 0; i < 20; i++) {
      const path = `${dest.base}/${fast}/ok/${i}`;
      const sent = Date.now();
      await b.publish({ url: path, body: String(i) });
      const hit = await waitFor(`B's message ${i}`, () => hitsFor(dest, fast).find((h) => h.path.endsWith(`/ok/${i}`)), 15_000, 10);
      delays.push(hit.time - sent);
      await sleep(50);
    }
    delays.sort((x, y) => x - y);
    console.log(`[pressure] B's delivery delay while A is busy: median ${delays[10]} ms, max ${delays[19]} ms`);
    // p99 of 20 samples is the largest.
    expect(delays[19]).toBeLessThanOrEqual(1000);
  }, 180_000);
});
