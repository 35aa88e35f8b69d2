/** Tests for duration parsing: the QStash header grammar, Go-style durations and formatting. */

import { describe, expect, it } from "vitest";
import { formatSeconds, parseDuration, parseGoDuration } from "../../src/core/duration";
import { ApiError } from "../../src/core/errors";

const HEADER = "Upstash-Delay";

/** Calls fn and returns the ApiError it throws, failing the test if it throws anything else or nothing. */
function apiErrorOf(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }
  throw new Error("expected an ApiError to be thrown");
}

describe("parseDuration", () => {
  it("parses every unit", () => {
    expect(parseDuration("500ms", HEADER)).toBe(500);
    expect(parseDuration("30s", HEADER)).toBe(30_000);
    expect(parseDuration("5m", HEADER)).toBe(300_000);
    expect(parseDuration("2h", HEADER)).toBe(7_200_000);
    expect(parseDuration("3d", HEADER)).toBe(259_200_000);
  });

  it("parses compound durations", () => {
    expect(parseDuration("1d10h30m", HEADER)).toBe(86_400_000 + 36_000_000 + 1_800_000);
    expect(parseDuration("1m30s", HEADER)).toBe(90_000);
    expect(parseDuration("1h1m1s1ms", HEADER)).toBe(3_661_001);
    expect(parseDuration("1s500ms", HEADER)).toBe(1500);
    expect(parseDuration("1m5ms", HEADER)).toBe(60_005);
    // Repeated units simply add up.
    expect(parseDuration("1s1s", HEADER)).toBe(2000);
  });

  it("accepts values larger than the next unit", () => {
    expect(parseDuration("90s", HEADER)).toBe(90_000);
    expect(parseDuration("1500ms", HEADER)).toBe(1500);
    expect(parseDuration("48h", HEADER)).toBe(172_800_000);
  });

  it("reads a bare integer as seconds", () => {
    expect(parseDuration("60", HEADER)).toBe(60_000);
    expect(parseDuration("0", HEADER)).toBe(0);
    expect(parseDuration("007", HEADER)).toBe(7000);
  });

  it("accepts zero with a unit", () => {
    expect(parseDuration("0s", HEADER)).toBe(0);
    expect(parseDuration("0ms", HEADER)).toBe(0);
    expect(parseDuration("0d", HEADER)).toBe(0);
  });

  it("trims surrounding whitespace", () => {
    expect(parseDuration("  30s  ", HEADER)).toBe(30_000);
    expect(parseDuration("\t15\n", HEADER)).toBe(15_000);
  });

  it("accepts the largest safe values", () => {
    expect(parseDuration(`${Number.MAX_SAFE_INTEGER}ms`, HEADER)).toBe(Number.MAX_SAFE_INTEGER);
    expect(parseDuration("365d", HEADER)).toBe(31_536_000_000);
  });

  const rejected: Array<[string, string]> = [
    ["", "empty"],
    ["   ", "whitespace only"],
    ["abc", "no number"],
    ["-5s", "negative"],
    ["-5", "negative bare number"],
    ["+5s", "explicit plus sign"],
    ["1.5s", "decimal"],
    ["1.5", "decimal bare number"],
    [".5s", "leading decimal point"],
    ["10x", "unknown unit"],
    ["10sec", "unknown long unit"],
    ["10S", "upper-case unit"],
    ["10us", "Go-only unit"],
    ["1h30", "missing trailing unit"],
    ["s", "unit without a number"],
    ["1 s", "inner space"],
    ["1h 30m", "space between groups"],
    ["1h,30m", "comma between groups"],
    ["1mss", "trailing letters after ms"],
    ["99999999999999999999", "bare number too large"],
    ["99999999999999999999d", "too large with a unit"],
    [`${Number.MAX_SAFE_INTEGER}s`, "overflows when converted to ms"],
    [`${"9".repeat(400)}s`, "overflows to Infinity"],
    ["9007199254740991ms1ms", "sum overflows"],
  ];

  for (const [value, why] of rejected) {
    it(`rejects ${JSON.stringify(value)} (${why}) with a 400 naming the header`, () => {
      const error = apiErrorOf(() => parseDuration(value, HEADER));
      expect(error.status).toBe(400);
      expect(error.message).toContain(HEADER);
      expect(error.message).toContain("invalid duration");
    });
  }

  it("quotes the offending value and says how to fix it", () => {
    const error = apiErrorOf(() => parseDuration("abc", HEADER));
    expect(error.message).toContain('Upstash-Delay: invalid duration "abc"');
    expect(error.message).toContain("like 30s or 1d10h30m");
  });

  it("names whichever header it is given", () => {
    const error = apiErrorOf(() => parseDuration("soon", "Upstash-Timeout"));
    expect(error.message).toContain("Upstash-Timeout");
    expect(error.message).not.toContain(HEADER);
  });

  it("explains specific problems", () => {
    expect(apiErrorOf(() => parseDuration("-5s", HEADER)).message).toContain("negative");
    expect(apiErrorOf(() => parseDuration("1.5s", HEADER)).message).toContain("decimals");
    expect(apiErrorOf(() => parseDuration("10x", HEADER)).message).toContain('unknown unit "x"');
    expect(apiErrorOf(() => parseDuration("1h30", HEADER)).message).toContain("no unit");
    expect(apiErrorOf(() => parseDuration("99999999999999999999d", HEADER)).message).toContain("too large");
  });

  it("shortens very long values in the message", () => {
    const error = apiErrorOf(() => parseDuration("x".repeat(5000), HEADER));
    expect(error.message.length).toBeLessThan(500);
  });
});

describe("parseGoDuration", () => {
  it("parses every unit", () => {
    expect(parseGoDuration("2h")).toBe(7_200_000);
    expect(parseGoDuration("3m")).toBe(180_000);
    expect(parseGoDuration("4s")).toBe(4000);
    expect(parseGoDuration("300ms")).toBe(300);
    expect(parseGoDuration("1500us")).toBe(1.5);
    expect(parseGoDuration("1500µs")).toBe(1.5); // micro sign
    expect(parseGoDuration("1500μs")).toBe(1.5); // Greek mu
    expect(parseGoDuration("2000000ns")).toBe(2);
  });

  it("parses compound durations", () => {
    expect(parseGoDuration("6m5s")).toBe(365_000);
    expect(parseGoDuration("1h2m3s4ms")).toBe(3_723_004);
    expect(parseGoDuration("1s500ms")).toBe(1500);
  });

  it("parses decimals exactly", () => {
    expect(parseGoDuration("1.5s")).toBe(1500);
    expect(parseGoDuration("1.1s")).toBe(1100);
    expect(parseGoDuration(".5s")).toBe(500);
    expect(parseGoDuration("1.s")).toBe(1000);
    expect(parseGoDuration("0.25h")).toBe(900_000);
    expect(parseGoDuration("1.5m30.5s")).toBe(120_500);
  });

  it("accepts zero with and without a unit", () => {
    expect(parseGoDuration("0")).toBe(0);
    expect(parseGoDuration("0s")).toBe(0);
  });

  it("returns null for anything else", () => {
    for (const value of ["", "abc", "5", "-5s", "+5s", "1d", "5x", ".s", "s", "1.2.3s", "5 s", "5S", "1h30"]) {
      expect(parseGoDuration(value), value).toBeNull();
    }
  });
});

describe("formatSeconds", () => {
  it("formats whole and fractional seconds", () => {
    expect(formatSeconds(900_000)).toBe("900s");
    expect(formatSeconds(0)).toBe("0s");
    expect(formatSeconds(1500)).toBe("1.5s");
    expect(formatSeconds(86_400_000)).toBe("86400s");
  });
});
