import { describe, expect, it } from "vitest";
import { nextFire, parseCron } from "../../src/core/cron";
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
