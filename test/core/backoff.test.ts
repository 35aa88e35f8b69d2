/** Tests for retry timing: default backoff, Retry-After style headers and the precedence between delay sources. */

import { describe, expect, it } from "vitest";
import { defaultBackoffMs, nextRetryDelayMs, retryAfterMs } from "../../src/core/backoff";
import { compileRetryDelay } from "../../src/core/expr";

const DAY_MS = 86_400_000;
/** Wednesday, 1 January 2025, 00:00:00 UTC. */
const NOW = Date.UTC(2025, 0, 1, 0, 0, 0);

describe("defaultBackoffMs", () => {
  it("grows as e^(2.5n) seconds, capped at one day", () => {
    expect(defaultBackoffMs(1)).toBe(12_182);
    expect(defaultBackoffMs(2)).toBe(148_413);
    expect(defaultBackoffMs(3)).toBe(1_808_042);
    expect(defaultBackoffMs(4)).toBe(22_026_465);
    expect(defaultBackoffMs(5)).toBe(DAY_MS);
    expect(defaultBackoffMs(6)).toBe(DAY_MS);
  });

  it("stays capped for large retry numbers", () => {
    expect(defaultBackoffMs(100)).toBe(DAY_MS);
    expect(defaultBackoffMs(10_000)).toBe(DAY_MS);
    expect(defaultBackoffMs(Infinity)).toBe(DAY_MS);
  });

  it("treats retry numbers below 1 as the first retry", () => {
    expect(defaultBackoffMs(0)).toBe(12_182);
    expect(defaultBackoffMs(-3)).toBe(12_182);
    expect(defaultBackoffMs(NaN)).toBe(12_182);
  });
});

describe("retryAfterMs", () => {
  const after = (init: Record<string, string>): number | null => retryAfterMs(new Headers(init), NOW);

  it("reads integer seconds", () => {
    expect(after({ "Retry-After": "120" })).toBe(120_000);
    expect(after({ "Retry-After": " 5 " })).toBe(5000);
  });

  it("reads zero as no wait", () => {
    expect(after({ "Retry-After": "0" })).toBe(0);
  });

  it("reads an HTTP date in the future as the time until then", () => {
    expect(after({ "Retry-After": "Wed, 01 Jan 2025 00:02:00 GMT" })).toBe(120_000);
    expect(after({ "Retry-After": "Wed, 01 Jan 2025 23:59:59 GMT" })).toBe(DAY_MS - 1000);
  });

  it("reads an HTTP date in the past as no wait", () => {
    expect(after({ "Retry-After": "Tue, 31 Dec 2024 23:00:00 GMT" })).toBe(0);
    expect(after({ "Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT" })).toBe(0);
  });

  it("reads Go durations", () => {
    expect(after({ "Retry-After": "6m5s" })).toBe(365_000);
    expect(after({ "Retry-After": "1.5s" })).toBe(1500);
    expect(after({ "Retry-After": "300ms" })).toBe(300);
    expect(after({ "Retry-After": "1h" })).toBe(3_600_000);
    // Sub-millisecond waits round up rather than vanish.
    expect(after({ "Retry-After": "500us" })).toBe(1);
  });

  it("accepts exactly one day", () => {
    expect(after({ "Retry-After": "86400" })).toBe(DAY_MS);
    expect(after({ "Retry-After": "24h" })).toBe(DAY_MS);
  });

  it("ignores a wait longer than one day and falls through to the next header", () => {
    expect(after({ "Retry-After": "86401" })).toBeNull();
    expect(after({ "Retry-After": "86401", "X-RateLimit-Reset": "30" })).toBe(30_000);
    expect(after({ "Retry-After": "25h", "X-RateLimit-Reset": "30" })).toBe(30_000);
    expect(after({ "Retry-After": "Fri, 03 Jan 2025 00:00:00 GMT", "X-RateLimit-Reset": "30" })).toBe(30_000);
    // A Unix timestamp read as seconds is far more than a day.
    expect(after({ "X-RateLimit-Reset": "1735689600", "X-RateLimit-Reset-Requests": "2s" })).toBe(2000);
  });

  it("ignores garbage and falls through to the next header", () => {
    expect(after({ "Retry-After": "soon" })).toBeNull();
    expect(after({ "Retry-After": "soon", "X-RateLimit-Reset": "7" })).toBe(7000);
    for (const garbage of ["-5", "1.5", "5 s", "", "Wed, 32 Jan 2025 00:00:00 GMT", "Thu, 30 Feb 2025 00:00:00 GMT", "2025-01-01"]) {
      expect(after({ "Retry-After": garbage, "X-RateLimit-Reset-Tokens": "9s" }), garbage).toBe(9000);
    }
  });

  it("prefers headers in order: Retry-After, X-RateLimit-Reset, -Requests, -Tokens", () => {
    const all = {
      "Retry-After": "1",
      "X-RateLimit-Reset": "2",
      "X-RateLimit-Reset-Requests": "3",
      "X-RateLimit-Reset-Tokens": "4",
    };
    expect(after(all)).toBe(1000);
    expect(after({ "X-RateLimit-Reset": "2", "X-RateLimit-Reset-Requests": "3", "X-RateLimit-Reset-Tokens": "4" })).toBe(
      2000,
    );
    expect(after({ "X-RateLimit-Reset-Requests": "3", "X-RateLimit-Reset-Tokens": "4" })).toBe(3000);
    expect(after({ "X-RateLimit-Reset-Tokens": "4" })).toBe(4000);
  });

  it("reads header names case-insensitively", () => {
    expect(after({ "retry-after": "3" })).toBe(3000);
    expect(after({ "x-ratelimit-reset-tokens": "1m" })).toBe(60_000);
  });

  it("returns null when no header applies", () => {
    expect(after({})).toBeNull();
    expect(after({ "Content-Type": "text/plain" })).toBeNull();
  });
});

describe("nextRetryDelayMs", () => {
  const expr = compileRetryDelay("1000 * (1 + retried)");

  it("prefers a valid Retry-After header over the expression and the default", () => {
    const response = new Headers({ "Retry-After": "7" });
    expect(nextRetryDelayMs({ retried: 0, expr, response, now: NOW, maxDelayMs: DAY_MS })).toBe(7000);
    expect(nextRetryDelayMs({ retried: 0, expr: null, response, now: NOW, maxDelayMs: DAY_MS })).toBe(7000);
  });

  it("uses a Retry-After of 0", () => {
    const response = new Headers({ "Retry-After": "0" });
    expect(nextRetryDelayMs({ retried: 2, expr, response, now: NOW, maxDelayMs: DAY_MS })).toBe(0);
  });

  it("uses the expression when the response has no usable header", () => {
    const response = new Headers({ "Retry-After": "garbage", "X-RateLimit-Reset": "2d" });
    expect(nextRetryDelayMs({ retried: 0, expr, response, now: NOW, maxDelayMs: DAY_MS })).toBe(1000);
    expect(nextRetryDelayMs({ retried: 2, expr, response: null, now: NOW, maxDelayMs: DAY_MS })).toBe(3000);
  });

  it("applies the expression's runtime rules", () => {
    const huge = compileRetryDelay("pow(10, 20)");
    expect(nextRetryDelayMs({ retried: 0, expr: huge, response: null, now: NOW, maxDelayMs: 5000 })).toBe(5000);
    const broken = compileRetryDelay("1 / 0");
    expect(nextRetryDelayMs({ retried: 0, expr: broken, response: null, now: NOW, maxDelayMs: DAY_MS })).toBe(0);
  });

  it("falls back to the default backoff for retry number retried + 1", () => {
    expect(nextRetryDelayMs({ retried: 0, expr: null, response: null, now: NOW, maxDelayMs: DAY_MS })).toBe(12_182);
    expect(nextRetryDelayMs({ retried: 1, expr: null, response: new Headers(), now: NOW, maxDelayMs: DAY_MS })).toBe(
      148_413,
    );
    expect(nextRetryDelayMs({ retried: 9, expr: null, response: null, now: NOW, maxDelayMs: DAY_MS })).toBe(DAY_MS);
  });
});
