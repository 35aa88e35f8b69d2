/** Retry timing: the default exponential backoff, Retry-After style response headers, and which one wins. */

import { parseGoDuration } from "./duration";
import { retryDelayMs, type RetryDelayExpr } from "./expr";

const DAY_MS = 24 * 60 * 60 * 1000;

/** The default backoff never waits longer than one day. */
const MAX_DEFAULT_BACKOFF_S = 86400;

/**
 * The default delay before retry number `retryNumber` (1 for the first retry): min(86400, e^(2.5·n)) seconds, in whole ms.
 * Values below 1 (or NaN) are treated as 1.
 */
export function defaultBackoffMs(retryNumber: number): number {
  const n = Number.isNaN(retryNumber) ? 1 : Math.max(1, retryNumber);
  const seconds = Math.min(MAX_DEFAULT_BACKOFF_S, Math.exp(2.5 * n));
  return Math.floor(seconds * 1000);
}

/** Response headers that may say when to retry, most preferred first. */
const RETRY_AFTER_HEADERS = ["Retry-After", "X-RateLimit-Reset", "X-RateLimit-Reset-Requests", "X-RateLimit-Reset-Tokens"];

const MONTHS: ReadonlyMap<string, number> = new Map([
  ["Jan", 0],
  ["Feb", 1],
  ["Mar", 2],
  ["Apr", 3],
  ["May", 4],
  ["Jun", 5],
  ["Jul", 6],
  ["Aug", 7],
  ["Sep", 8],
  ["Oct", 9],
  ["Nov", 10],
  ["Dec", 11],
]);

/** RFC 1123 dates as used by HTTP, e.g. "Wed, 21 Oct 2015 07:28:00 GMT". */
const HTTP_DATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;

/**
 * Parses an RFC 1123 HTTP date into epoch milliseconds, or null.
 * Parsed by hand rather than with Date.parse, which accepts far too much.
 */
function parseHttpDate(value: string): number | null {
  const match = HTTP_DATE.exec(value);
  if (!match) return null;
  const [, dayText, monthText, yearText, hourText, minuteText, secondText] = match;
  const month = MONTHS.get(monthText as string);
  if (month === undefined) return null;
  const day = Number(dayText);
  const year = Number(yearText);
  const hour = Number(hourText);
  const minute = Number(minuteText);
  const second = Number(secondText);
  if (hour > 23 || minute > 59 || second > 60) return null;
  // Day 0 of the next month is the last day of this one.
  const daysInMonth = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  if (day < 1 || day > daysInMonth) return null;
  // A leap second (:60) is read as the start of the next minute.
  return Date.UTC(year, month, day, hour, minute, second);
}

/** Reads one Retry-After style value as a delay in ms: integer seconds, an HTTP date or a Go duration. */
function parseRetryAfterValue(value: string, now: number): number | null {
  const text = value.trim();
  if (/^[0-9]+$/.test(text)) {
    return Number(text) * 1000;
  }
  const date = parseHttpDate(text);
  if (date !== null) {
    return Math.max(0, date - now);
  }
  const ms = parseGoDuration(text);
  // Round sub-millisecond remainders up so that a tiny wait is not turned into none.
  return ms === null ? null : Math.ceil(ms);
}

/**
 * Reads how long a failed response asked us to wait, in ms, from Retry-After, X-RateLimit-Reset,
 * X-RateLimit-Reset-Requests or X-RateLimit-Reset-Tokens (in that order of preference).
 * A header that does not parse, or asks for more than one day, is skipped. Returns null when none applies.
 */
export function retryAfterMs(headers: Headers, now: number): number | null {
  for (const name of RETRY_AFTER_HEADERS) {
    const value = headers.get(name);
    if (value === null) continue;
    const delay = parseRetryAfterValue(value, now);
    if (delay !== null && delay <= DAY_MS) return delay;
  }
  return null;
}

/**
 * The delay before the next retry, in ms. `retried` is the number of retries already made (0 before the first retry).
 * Precedence: a valid Retry-After style header on the failed response, then the Upstash-Retry-Delay expression,
 * then the default exponential backoff.
 */
export function nextRetryDelayMs(opts: {
  retried: number;
  expr: RetryDelayExpr | null;
  response: Headers | null;
  now: number;
  maxDelayMs: number;
}): number {
  if (opts.response) {
    const fromHeaders = retryAfterMs(opts.response, opts.now);
    if (fromHeaders !== null) return fromHeaders;
  }
  if (opts.expr) {
    return retryDelayMs(opts.expr, opts.retried, opts.maxDelayMs);
  }
  return defaultBackoffMs(opts.retried + 1);
}
