/** Parsing and formatting of durations: the QStash header grammar (30s, 1d10h30m) and Go-style durations. */

import { ApiError } from "./errors";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** How to write a valid duration, appended to every parse error. */
const DURATION_HINT =
  "use a whole number followed by s, m, h or d (or ms), like 30s or 1d10h30m; a bare number means seconds";

/** Longest slice of a rejected value that is echoed back in an error message. */
const MAX_ECHO = 100;

/** Quotes a user-supplied value for an error message, shortening very long values. */
function quote(value: string): string {
  const shown = value.length > MAX_ECHO ? `${value.slice(0, MAX_ECHO)}…` : value;
  return JSON.stringify(shown);
}

/** Builds the 400 error for a duration that does not parse. */
function invalidDuration(header: string, value: string, reason?: string): ApiError {
  const why = reason ? `${reason}; ` : "";
  return new ApiError(400, `${header}: invalid duration ${quote(value)}: ${why}${DURATION_HINT}`);
}

function isDigit(ch: string | undefined): boolean {
  return ch !== undefined && ch >= "0" && ch <= "9";
}

function isLetter(ch: string | undefined): boolean {
  return ch !== undefined && ((ch >= "a" && ch <= "z") || (ch >= "A" && ch <= "Z") || ch === "µ" || ch === "μ");
}

/**
 * Parses a duration header such as `Upstash-Delay` into milliseconds.
 * Accepts one or more `<integer><unit>` groups with units ms, s, m, h, d, or a bare integer meaning seconds.
 * Throws ApiError(400) naming `header` for anything else, including values too large to represent exactly.
 */
export function parseDuration(value: string, header: string): number {
  const text = value.trim();
  if (text === "") {
    throw invalidDuration(header, value, "the value is empty");
  }

  // A bare integer is a number of seconds.
  if (/^[0-9]+$/.test(text)) {
    const ms = Number(text) * SECOND;
    if (!Number.isSafeInteger(ms)) {
      throw invalidDuration(header, text, "the value is too large");
    }
    return ms;
  }

  let total = 0;
  let i = 0;
  while (i < text.length) {
    const start = i;
    while (isDigit(text[i])) i++;
    if (i === start) {
      const ch = text[i];
      if (ch === "-") throw invalidDuration(header, text, "durations cannot be negative");
      if (ch === "+") throw invalidDuration(header, text, "remove the \"+\" sign");
      if (ch === ".") throw invalidDuration(header, text, "decimals are not allowed");
      throw invalidDuration(header, text, `expected a number at position ${i} but found ${JSON.stringify(ch)}`);
    }
    const amount = Number(text.slice(start, i));

    if (text[i] === ".") {
      throw invalidDuration(header, text, "decimals are not allowed (write 1500ms or 90s rather than 1.5s or 1.5m)");
    }

    let factor: number;
    if (text.startsWith("ms", i) && !isLetter(text[i + 2])) {
      factor = 1;
      i += 2;
    } else {
      // Read the whole run of letters so that "30sec" is reported as the unknown unit "sec".
      const unitStart = i;
      while (isLetter(text[i])) i++;
      const unit = text.slice(unitStart, i);
      switch (unit) {
        case "s":
          factor = SECOND;
          break;
        case "m":
          factor = MINUTE;
          break;
        case "h":
          factor = HOUR;
          break;
        case "d":
          factor = DAY;
          break;
        case "":
          if (i >= text.length) {
            throw invalidDuration(header, text, `the number at position ${start} has no unit`);
          }
          throw invalidDuration(header, text, `unexpected ${JSON.stringify(text[i])} at position ${i}`);
        default:
          throw invalidDuration(header, text, `unknown unit ${JSON.stringify(unit)}`);
      }
    }

    total += amount * factor;
    // Checking as we go keeps overflowed (Infinity) intermediate results out of the sum.
    if (!Number.isSafeInteger(total)) {
      throw invalidDuration(header, text, "the value is too large");
    }
  }
  return total;
}

/** Nanoseconds per unit accepted by Go's time.ParseDuration. */
const GO_UNITS_NS: ReadonlyMap<string, number> = new Map([
  ["ns", 1],
  ["us", 1e3],
  ["µs", 1e3], // U+00B5 micro sign
  ["μs", 1e3], // U+03BC Greek small letter mu
  ["ms", 1e6],
  ["s", 1e9],
  ["m", 60e9],
  ["h", 3600e9],
]);

/** Fraction digits beyond this add nothing measurable, so they are dropped before converting. */
const MAX_FRACTION_DIGITS = 15;

/**
 * Parses a Go-style duration (`6m5s`, `1.5s`, `300ms`, `0`) into milliseconds, or returns null when it does not parse.
 * Units are ns, us, µs, ms, s, m, h; decimals are allowed; a sign is not. The result may be fractional for sub-ms units.
 */
export function parseGoDuration(value: string): number | null {
  const text = value.trim();
  if (text === "") return null;
  // Go accepts a lone zero without a unit.
  if (text === "0") return 0;

  let totalNs = 0;
  let i = 0;
  while (i < text.length) {
    const intStart = i;
    while (isDigit(text[i])) i++;
    const whole = text.slice(intStart, i);

    let fraction = "";
    if (text[i] === ".") {
      i++;
      const fracStart = i;
      while (isDigit(text[i])) i++;
      fraction = text.slice(fracStart, i);
    }
    // Go needs at least one digit on either side of the point.
    if (whole === "" && fraction === "") return null;

    const unitStart = i;
    while (i < text.length && !isDigit(text[i]) && text[i] !== ".") i++;
    const unitNs = GO_UNITS_NS.get(text.slice(unitStart, i));
    if (unitNs === undefined) return null;

    // Whole and fractional parts are scaled separately so that 1.1s is exactly 1100 ms.
    let ns = whole === "" ? 0 : Number(whole) * unitNs;
    if (fraction !== "") {
      const digits = fraction.slice(0, MAX_FRACTION_DIGITS);
      ns += (Number(digits) * unitNs) / 10 ** digits.length;
    }
    totalNs += ns;
  }
  if (!Number.isFinite(totalNs)) return null;
  return totalNs / 1e6;
}

/** Formats milliseconds as seconds for error messages, e.g. 900000 → "900s", 1500 → "1.5s". */
export function formatSeconds(ms: number): string {
  return `${Math.round(ms) / 1000}s`;
}
