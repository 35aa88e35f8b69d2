/** Tests for the Upstash-Retry-Delay expression language: parsing, evaluation, errors and hostile input. */

import { describe, expect, it } from "vitest";
import { ApiError } from "../../src/core/errors";
import { compileRetryDelay, retryDelayMs } from "../../src/core/expr";

const HEADER = "Upstash-Retry-Delay";
const DAY_MS = 86_400_000;

/** Compiles and evaluates in one step. */
function run(source: string, retried = 0): number {
  return compileRetryDelay(source).evaluate(retried);
}

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

/** Asserts that compiling fails with a 400 that names the header, and returns its message. */
function rejectMessage(source: string, header?: string): string {
  const error = apiErrorOf(() => (header === undefined ? compileRetryDelay(source) : compileRetryDelay(source, header)));
  expect(error.status).toBe(400);
  expect(error.message).toContain(header ?? HEADER);
  return error.message;
}

describe("compileRetryDelay: documented examples", () => {
  it("1000 * (1 + retried)", () => {
    const expr = compileRetryDelay("1000 * (1 + retried)");
    expect(expr.evaluate(0)).toBe(1000);
    expect(expr.evaluate(1)).toBe(2000);
    expect(expr.evaluate(4)).toBe(5000);
  });

  it("pow(2, retried) * 1000", () => {
    const expr = compileRetryDelay("pow(2, retried) * 1000");
    expect(expr.evaluate(0)).toBe(1000);
    expect(expr.evaluate(3)).toBe(8000);
  });

  it("max(1000, pow(2, retried) * 100)", () => {
    const expr = compileRetryDelay("max(1000, pow(2, retried) * 100)");
    expect(expr.evaluate(0)).toBe(1000);
    expect(expr.evaluate(3)).toBe(1000);
    expect(expr.evaluate(4)).toBe(1600);
  });

  it("1000 * retried", () => {
    const expr = compileRetryDelay("1000 * retried");
    expect(expr.evaluate(0)).toBe(0);
    expect(expr.evaluate(7)).toBe(7000);
  });

  it("keeps the source", () => {
    expect(compileRetryDelay("1000 * retried").source).toBe("1000 * retried");
  });
});

describe("compileRetryDelay: arithmetic", () => {
  it("applies precedence", () => {
    expect(run("2 * 3 + 4")).toBe(10);
    expect(run("4 + 2 * 3")).toBe(10);
    expect(run("(4 + 2) * 3")).toBe(18);
    expect(run("10 - 6 / 2")).toBe(7);
  });

  it("is left-associative", () => {
    expect(run("10 - 4 - 3")).toBe(3);
    expect(run("100 / 4 / 5")).toBe(5);
    expect(run("2 * 3 / 6 * 4")).toBe(4);
    expect(run("1 - 2 + 3")).toBe(2);
  });

  it("handles unary minus and plus", () => {
    expect(run("-2 * 3")).toBe(-6);
    expect(run("-(2 + 3)")).toBe(-5);
    expect(run("--4")).toBe(4);
    expect(run("3 - -2")).toBe(5);
    expect(run("+5")).toBe(5);
    expect(run("2 * -retried", 3)).toBe(-6);
    expect(run("-pow(2, 2)")).toBe(-4);
    // A long run of signs is a loop, not recursion.
    expect(run(`${"-".repeat(500)}1`)).toBe(1);
  });

  it("parses integers and decimals", () => {
    expect(run("1.5")).toBe(1.5);
    expect(run(".5")).toBe(0.5);
    expect(run("0.25 * 4")).toBe(1);
    expect(run("007")).toBe(7);
    expect(run("99999999999999999999999")).toBe(1e23);
  });

  it("ignores whitespace", () => {
    expect(run("1000*(1+retried)", 1)).toBe(2000);
    expect(run("  \t1000 *\n( 1 +  retried )  ", 1)).toBe(2000);
    expect(run("pow ( 2 , 3 )")).toBe(8);
  });
});

describe("compileRetryDelay: functions", () => {
  it("pow", () => {
    expect(run("pow(2, 10)")).toBe(1024);
    expect(run("pow(retried, 2)", 5)).toBe(25);
  });

  it("exp", () => {
    expect(run("exp(0)")).toBe(1);
    expect(run("exp(1)")).toBeCloseTo(Math.E, 12);
  });

  it("sqrt", () => {
    expect(run("sqrt(16)")).toBe(4);
  });

  it("abs", () => {
    expect(run("abs(-3)")).toBe(3);
    expect(run("abs(3)")).toBe(3);
  });

  it("floor, ceil and round", () => {
    expect(run("floor(2.7)")).toBe(2);
    expect(run("ceil(2.1)")).toBe(3);
    expect(run("round(2.5)")).toBe(3);
    expect(run("round(2.4)")).toBe(2);
  });

  it("min and max with any number of arguments", () => {
    expect(run("min(5)")).toBe(5);
    expect(run("min(3, 1, 2)")).toBe(1);
    expect(run("max(7)")).toBe(7);
    expect(run("max(3, 1, 2, retried)", 9)).toBe(9);
  });

  it("nests calls", () => {
    expect(run("min(max(1, 2), pow(2, abs(-3)))")).toBe(2);
  });
});

describe("compileRetryDelay: errors", () => {
  it("rejects empty input", () => {
    expect(rejectMessage("")).toContain("empty");
    expect(rejectMessage("   ")).toContain("empty");
  });

  it("rejects unknown variables with their position", () => {
    const message = rejectMessage("1000 * foo");
    expect(message).toContain('"1000 * foo"');
    expect(message).toContain('unknown variable "foo" at position 7');
    expect(message).toContain('the only variable is "retried"');
  });

  it("rejects names that exist on Object.prototype", () => {
    expect(rejectMessage("constructor")).toContain('unknown variable "constructor"');
    expect(rejectMessage("__proto__")).toContain('unknown variable "__proto__"');
    expect(rejectMessage("toString(1)")).toContain('unknown function "toString"');
    expect(rejectMessage("hasOwnProperty")).toContain("unknown variable");
  });

  it("rejects property access", () => {
    expect(rejectMessage("retried.constructor")).toContain('unexpected character "." at position 7');
  });

  it("rejects unknown functions", () => {
    const message = rejectMessage("eval(1)");
    expect(message).toContain('unknown function "eval" at position 0');
    expect(message).toContain("pow");
    expect(rejectMessage("Function(1)")).toContain("unknown function");
    expect(rejectMessage("POW(2, 3)")).toContain("unknown function");
  });

  it("rejects a variable called as a function and a function used as a variable", () => {
    expect(rejectMessage("retried(1)")).toContain("is a variable, not a function");
    expect(rejectMessage("pow * 2")).toContain("is a function");
  });

  it("checks argument counts", () => {
    expect(rejectMessage("min()")).toContain("at least 1 argument");
    expect(rejectMessage("max()")).toContain("at least 1 argument");
    expect(rejectMessage("pow(1)")).toContain("exactly 2 arguments but was given 1");
    expect(rejectMessage("pow(1, 2, 3)")).toContain("exactly 2 arguments but was given 3");
    expect(rejectMessage("sqrt()")).toContain("exactly 1 argument");
    expect(rejectMessage("abs(1, 2)")).toContain("exactly 1 argument");
  });

  it("rejects malformed syntax", () => {
    expect(rejectMessage("1 2")).toContain('unexpected "2" at position 2');
    expect(rejectMessage("1 +")).toContain("end of expression");
    expect(rejectMessage("()")).toContain("empty parentheses");
    expect(rejectMessage("(1 + 2")).toContain('expected ")"');
    expect(rejectMessage("1 + 2)")).toContain('unexpected ")"');
    expect(rejectMessage("* 2")).toContain('unexpected "*"');
    expect(rejectMessage("2 ** 3")).toContain('unexpected "*"');
    expect(rejectMessage("pow(2,)")).toContain('unexpected ")"');
    expect(rejectMessage("pow(,2)")).toContain('unexpected ","');
    expect(rejectMessage("1, 2")).toContain('unexpected ","');
    expect(rejectMessage("1.")).toContain("decimal point");
    expect(rejectMessage("1e400")).toContain('unexpected "e400"');
    expect(rejectMessage("2 ^ 3")).toContain("pow(x, y)");
    expect(rejectMessage("1 % 2")).toContain('unexpected character "%"');
    expect(rejectMessage("retried; 1")).toContain('unexpected character ";"');
  });

  it("rejects number literals that overflow", () => {
    expect(rejectMessage("9".repeat(400))).toContain("too large");
  });

  it("names a custom header", () => {
    rejectMessage("foo", "X-Custom-Delay");
  });
});

describe("compileRetryDelay: hostile input", () => {
  it("rejects 100k nested parentheses quickly without overflowing the stack", () => {
    const source = `${"(".repeat(100_000)}1${")".repeat(100_000)}`;
    const started = Date.now();
    const message = rejectMessage(source);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(message).toContain("limit");
    // The message must not echo the whole input back.
    expect(message.length).toBeLessThan(500);
  });

  it("rejects input longer than 1000 characters", () => {
    expect(rejectMessage(`1${"+1".repeat(1000)}`)).toContain("limit of 1000");
    expect(rejectMessage(" ".repeat(2000))).toContain("limit of 1000");
  });

  it("accepts input of exactly 1000 characters", () => {
    const source = `1${" ".repeat(999)}`;
    expect(source.length).toBe(1000);
    expect(run(source)).toBe(1);
  });

  it("rejects nesting deeper than 64 levels within the length limit", () => {
    const source = `${"(".repeat(400)}1${")".repeat(400)}`;
    expect(rejectMessage(source)).toContain("deeper than 64");
    const calls = `${"abs(".repeat(100)}1${")".repeat(100)}`;
    expect(rejectMessage(calls)).toContain("deeper than 64");
  });

  it("accepts deep but legal nesting", () => {
    expect(run(`${"(".repeat(50)}retried + 1${")".repeat(50)}`, 2)).toBe(3);
    expect(run(`${"(".repeat(64)}1${")".repeat(64)}`)).toBe(1);
    expect(run(`${"abs(".repeat(50)}-7${")".repeat(50)}`)).toBe(7);
  });

  it("handles long operator chains", () => {
    const source = `1${"+1".repeat(499)}`;
    expect(run(source)).toBe(500);
  });
});

describe("retryDelayMs", () => {
  const delay = (source: string, retried = 0, max = DAY_MS): number =>
    retryDelayMs(compileRetryDelay(source), retried, max);

  it("returns the value rounded down", () => {
    expect(delay("1000 * (1 + retried)", 2)).toBe(3000);
    expect(delay("1500.9")).toBe(1500);
    expect(delay("0")).toBe(0);
  });

  it("turns infinities into 0", () => {
    expect(delay("1/0")).toBe(0);
    expect(delay("-1/0")).toBe(0);
  });

  it("turns NaN into 0", () => {
    expect(delay("sqrt(-1)")).toBe(0);
    expect(delay("0/0")).toBe(0);
  });

  it("turns negative values into 0", () => {
    expect(delay("-5")).toBe(0);
    expect(delay("0 - retried", 3)).toBe(0);
    expect(Object.is(delay("-0"), 0)).toBe(true);
  });

  it("caps values at the maximum delay", () => {
    expect(delay("99999999999999999999999")).toBe(DAY_MS);
    expect(delay("pow(2, retried) * 1000", 30)).toBe(DAY_MS);
    expect(delay("5000", 0, 2000)).toBe(2000);
  });

  it("evaluates with the given retry count", () => {
    const expr = compileRetryDelay("pow(2, retried) * 1000");
    expect(retryDelayMs(expr, 0, DAY_MS)).toBe(1000);
    expect(retryDelayMs(expr, 5, DAY_MS)).toBe(32_000);
  });
});
