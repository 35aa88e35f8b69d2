/**
 * Quotas through the official SDK against `npm run dev` with quotas switched on: the daily message quota raises
 * `QstashDailyRatelimitError`, the management burst limit `QstashRatelimitError`, each with the server's figures.
 */
import { Client, QstashDailyRatelimitError, QstashRatelimitError } from "@upstash/qstash";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Destination, startDestination } from "../support/destination";
import { USER2, uniqueKey } from "./helpers";
import { type DevServer, showServerOnFailure, startServer } from "./server";

let server: DevServer | undefined;
let dest: Destination;

beforeAll(async () => {
  dest = await startDestination();
  server = await startServer({ vars: { DAILY_MESSAGE_QUOTA: "3", BURST_RPS: "4" } });
});
afterAll(async () => {
  await server?.stop();
  await dest?.close();
});
showServerOnFailure(() => server);

describe("quotas (429)", () => {
  it("the daily message quota raises QstashDailyRatelimitError with limit, remaining and reset", async () => {
    const client = new Client({ baseUrl: server!.url, token: USER2.token });
    const url = `${dest.base}/${uniqueKey("quota")}/ok`;
    for (let i = 0; i < 3; i++) await client.publishJSON({ url, body: { i } });
    const err = await client.publishJSON({ url, body: { i: 3 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QstashDailyRatelimitError);
    const e = err as QstashDailyRatelimitError;
    expect(e.status).toBe(429);
    expect(String(e.limit)).toBe("3");
    expect(String(e.remaining)).toBe("0");
    expect(Number(e.reset)).toBeGreaterThan(Date.now() / 1000);
  });

  it("management calls past the burst limit raise QstashRatelimitError", async () => {
    const client = new Client({ baseUrl: server!.url, token: USER2.token });
    const results = await Promise.all(Array.from({ length: 12 }, () => client.schedules.list().then(() => null, (e: unknown) => e)));
    const limited = results.filter((r: unknown) => r instanceof QstashRatelimitError) as QstashRatelimitError[];
    expect(limited.length).toBeGreaterThan(0);
    expect(String(limited[0].limit)).toBe("4");
    expect(Number(limited[0].reset)).toBeGreaterThan(Date.now() / 1000 - 1);
  });
});
