import { describe, expect, it } from "vitest";
import { describeCron, nextFire, nextFires, parseCron } from "../../src/core/cron";
import { ApiError } from "../../src/core/errors";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

describe("cron", () => {
  it("evaluates in UTC by default and trims the stored expression", () => {
    const c = parseCron("  */10 * * * *  ");
    expect(c.expression).toBe("*/10 * * * *");
    expect(iso(nextFire(c, Date.parse("2026-01-01T00:03:00Z")))).toBe("2026-01-01T00:10:00.000Z");
    expect(iso(nextFire(c, Date.parse("2026-01-01T00:10:00Z")))).toBe("2026-01-01T00:20:00.000Z");
  });

  it("honours CRON_TZ", () => {
    const c = parseCron("CRON_TZ=America/New_York 0 4 * * *");
    expect(c.timezone).toBe("America/New_York");
    expect(iso(nextFire(c, Date.parse("2026-01-15T00:00:00Z")))).toBe("2026-01-15T09:00:00.000Z"); // EST, UTC-5
    expect(iso(nextFire(c, Date.parse("2026-07-15T00:00:00Z")))).toBe("2026-07-15T08:00:00.000Z"); // EDT, UTC-4
  });

  it("spring forward: a time inside the gap fires once, right after the gap", () => {
    const c = parseCron("CRON_TZ=America/New_York 30 2 * * *");
    // 2026-03-08 02:00 EST jumps to 03:00 EDT (07:00Z)
    expect(iso(nextFire(c, Date.parse("2026-03-08T05:00:00Z")))).toBe("2026-03-08T07:00:00.000Z");
    expect(iso(nextFire(c, Date.parse("2026-03-08T07:00:00Z")))).toBe("2026-03-09T06:30:00.000Z");
  });

  it("fall back: a repeated local time fires once", () => {
    const c = parseCron("CRON_TZ=America/New_York 30 1 * * *");
    // 2026-11-01 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST)
    const first = nextFire(c, Date.parse("2026-11-01T04:00:00Z"));
    expect(iso(first)).toBe("2026-11-01T05:30:00.000Z");
    expect(iso(nextFire(c, first!))).toBe("2026-11-02T06:30:00.000Z");
  });

  it("an hourly job keeps its UTC rhythm across DST in Europe/Berlin", () => {
    const c = parseCron("CRON_TZ=Europe/Berlin 0 * * * *");
    const t = Date.parse("2026-03-29T00:30:00Z"); // 01:30 CET; 02:00 local does not exist
    expect(iso(nextFire(c, t))).toBe("2026-03-29T01:00:00.000Z");
    expect(iso(nextFire(c, Date.parse("2026-03-29T01:00:00Z")))).toBe("2026-03-29T02:00:00.000Z");
  });

  it("refuses bad expressions and zones with a 400 naming Upstash-Cron", () => {
    for (const bad of [undefined, "", "* * * *", "* * * * * *", "61 * * * *", "* * 32 * *", "CRON_TZ=Mars/Olympus * * * * *", "CRON_TZ=UTC", "a b c d e"]) {
      let err: unknown;
      try {
        parseCron(bad);
      } catch (e) {
        err = e;
      }
      expect(err, String(bad)).toBeInstanceOf(ApiError);
      expect((err as ApiError).status).toBe(400);
      expect((err as ApiError).message).toMatch(/Upstash-Cron/);
    }
  });
});

describe("cron in words and next fires", () => {
  const words = (e: string) => describeCron(parseCron(e));
  it("describes the common shapes", () => {
    expect(words("* * * * *")).toBe("Every minute (UTC)");
    expect(words("*/15 * * * *")).toBe("Every 15 minutes (UTC)");
    expect(words("5 * * * *")).toBe("At minute 5 of every hour (UTC)");
    expect(words("0 */6 * * *")).toBe("At minute 0 of every 6 hours (UTC)");
    expect(words("30 9 * * 1-5")).toBe("At 09:30, on Monday through Friday (UTC)");
    expect(words("0 8,20 * * *")).toBe("At 08:00, 20:00 (UTC)");
    expect(words("CRON_TZ=Asia/Tokyo 0 0 1 JAN,JUL *")).toBe("At 00:00, on day 1 of the month, in January, July (Asia/Tokyo)");
    expect(words("0 12 15 * SUN")).toBe("At 12:00, on day 15 of the month, or on Sunday (UTC)");
    expect(words("*/5 9-17 * * MON-FRI")).toBe("Every 5 minutes from 09:00 through 17:59, on Monday through Friday (UTC)");
    expect(words("* 3 * * *")).toBe("Every minute from 03:00 through 03:59 (UTC)");
    expect(words("0,30 1-3 * * *")).toBe("At minute 0, 30 of hour 1 through 3 (UTC)");
  });

  it("lists the next fires in the expression's zone", () => {
    const fires = nextFires(parseCron("CRON_TZ=Europe/Berlin 30 9 * * 1-5"), Date.parse("2026-12-04T12:00:00Z"), 3);
    expect(fires.map(iso)).toEqual(["2026-12-07T08:30:00.000Z", "2026-12-08T08:30:00.000Z", "2026-12-09T08:30:00.000Z"]);
  });
});
