/**
 * Property-based tests (fast-check) of everything a caller can type: publish configuration headers and their
 * query-string form, destinations, durations, retry-delay expressions, cron strings, schedule ids and list
 * filters. The properties (contract §1.3, §1.5, §1.6, §1.9, §3, §4.4, §8 #12):
 *   - never a 5xx;
 *   - every 4xx is JSON {"error": "<message>"} and nothing at all is stored for the rejected call;
 *   - inputs generated from the contract's grammars are accepted (within the configured limits).
 *
 * Nothing generated here reaches the destination server: publishes carry Upstash-Delay: 1h, and the cases
 * that test the delay itself are enqueued into a paused queue. Everything left pending is cancelled at the end.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { settings } from "../../src/config";
import { parseDuration } from "../../src/core/duration";
import { ApiError } from "../../src/core/errors";
import { compileRetryDelay, retryDelayMs } from "../../src/core/expr";
import type { NewTenant } from "../../src/db/tenants";
import worker from "../../src/index";
import { BASE, dbOf, dest, freshTenant, uniqueKey } from "./helpers";

// ---------------------------------------------------------------------------------------------------------------
// How many cases

/** Fewest runs of each property in the long form: with 14 properties, at least 18,000 cases (10,000 over HTTP). */
const LONG_FORM_MIN_RUNS = 1000;

/**
 * Setting FUZZ_RUNS switches to the long form: every property runs FUZZ_RUNS cases, and at least
 * LONG_FORM_MIN_RUNS (or its default when that is larger). FUZZ_RUNS=1000 (or any non-numeric value) takes 3–5
 * minutes on 2 cores.
 * workerd has no process.env: the value is read from a FUZZ_RUNS binding of the test worker when
 * vitest.config.ts defines one, else from import.meta.env, where Vite exposes VITE_-prefixed variables
 * (so `VITE_FUZZ_RUNS=1000 npx vitest run test/worker/fuzz.test.ts` works without any config change).
 */
function longFormRuns(): number | null {
  const bindings = env as { FUZZ_RUNS?: unknown };
  const meta = (import.meta as { env?: Record<string, unknown> }).env ?? {};
  const raw = bindings.FUZZ_RUNS ?? meta.FUZZ_RUNS ?? meta.VITE_FUZZ_RUNS;
  if (raw === undefined || raw === null || String(raw).trim() === "") return null;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? Math.max(n, LONG_FORM_MIN_RUNS) : LONG_FORM_MIN_RUNS;
}

const LONG_RUNS = longFormRuns();

/**
 * Runs of one property. The defaults (no FUZZ_RUNS) keep CI fast: about 1,600 HTTP cases and 8,000
 * pure-function cases for the whole file, 15–30 s on 2 cores.
 */
function runs(defaultRuns: number): number {
  return LONG_RUNS === null ? defaultRuns : Math.max(LONG_RUNS, defaultRuns);
}

/**
 * Vitest timeout for a property. A case takes 5–50 ms (slower as the fuzz tenant fills up in the long form),
 * so 150 ms per case leaves room for a loaded machine.
 */
function timeoutFor(defaultRuns: number): number {
  return Math.max(60_000, runs(defaultRuns) * 150);
}

// ---------------------------------------------------------------------------------------------------------------
// Calling the worker

let tenant: NewTenant;
/** A queue created paused: messages enqueued into it are stored but never dispatched. */
const PAUSED_QUEUE = "fuzz-paused";
/** A schedule that is paused before any fuzzing; upserts keep it paused (contract §2.7), so it never fires. */
const PAUSED_SCHEDULE = "fuzz-cron";
/** Fires once a year, at New Year. */
const RARE_CRON = "0 0 1 1 *";
let destUrl: string;

interface Answer {
  status: number;
  type: string;
  text: string;
}

/**
 * Calls the worker's fetch handler in-process with a real Request, as SELF.fetch would. SELF.fetch gets slower
 * with every request made in one workerd instance (cloudflare/workers-sdk#15446), which thousands of cases
 * cannot afford. A handler that throws instead of answering is reported as status 599.
 * Returns null when the Request itself cannot be built (e.g. a header value the Fetch API refuses).
 */
async function send(method: string, path: string, headers: [string, string][] = [], body?: string, token = tenant.token): Promise<Answer | null> {
  let request: Request<unknown, IncomingRequestCfProperties>;
  try {
    const h = new Headers(headers);
    h.set("authorization", `Bearer ${token}`);
    request = new Request(`${BASE}${path}`, { method, headers: h, body }) as Request<unknown, IncomingRequestCfProperties>;
  } catch {
    return null;
  }
  const ctx = createExecutionContext();
  try {
    const res = await worker.fetch!(request, env, ctx);
    return { status: res.status, type: res.headers.get("content-type") ?? "", text: await res.text() };
  } catch (err) {
    return { status: 599, type: "", text: `the handler threw: ${String(err)}` };
  } finally {
    await waitOnExecutionContext(ctx);
  }
}

/** Like send, for calls built by the test itself (never refused by the Fetch API). */
async function sendOk(method: string, path: string, headers: [string, string][] = [], body?: string, token = tenant.token): Promise<Answer> {
  const a = await send(method, path, headers, body, token);
  if (a === null) throw new Error(`could not build the request ${method} ${path}`);
  return a;
}

/** Rows of the fuzz tenant in every table a call could write to. */
async function counts(): Promise<Record<string, number>> {
  const tables = ["messages", "log_marks", "dlq", "schedules", "queues", "topics", "topic_endpoints", "flow_control_keys", "dedup"];
  const sql = `SELECT ${tables.map((t) => `(SELECT count(*) FROM ${t} WHERE tenant_id = ?1) AS ${t}`).join(", ")}`;
  const row = await dbOf(tenant).prepare(sql).bind(tenant.tenantId).first<Record<string, number>>();
  return { ...row };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The checks every answer must pass: a 2xx or a 4xx, never a 5xx (or a 3xx); a 4xx is exactly
 * {"error": "<non-empty>"} as JSON, and nothing was stored. Returns the parsed body of a 2xx, or null.
 */
async function expectWellFormed(what: string, a: Answer, before: Record<string, number>): Promise<unknown> {
  const shown = `${what}\n→ ${a.status} ${a.text.slice(0, 500)}`;
  expect(a.status >= 500, `never a 5xx: ${shown}`).toBe(false);
  expect((a.status >= 200 && a.status < 300) || (a.status >= 400 && a.status < 500), `a 2xx or a 4xx: ${shown}`).toBe(true);
  const body = parseJson(a.text);
  if (a.status >= 400) {
    expect(a.type, `JSON content type: ${shown}`).toContain("application/json");
    expect(body !== null && typeof body === "object" && !Array.isArray(body), `a JSON object: ${shown}`).toBe(true);
    const obj = body as Record<string, unknown>;
    expect(Object.keys(obj), `only an "error" key: ${shown}`).toEqual(["error"]);
    expect(typeof obj.error === "string" && obj.error.length > 0, `a non-empty error message: ${shown}`).toBe(true);
    expect(await counts(), `rejected, so nothing may be stored: ${shown}`).toEqual(before);
    return null;
  }
  return body;
}

function describeCase(method: string, path: string, headers: [string, string][]): string {
  return `${method} ${path}${headers.map(([k, v]) => `\n  ${k}: ${v}`).join("")}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Generators

/** Printable ASCII: what a header value can carry without the Fetch API refusing it. */
const ascii = (maxLength = 20) => fc.string({ maxLength });
/** Any Unicode text (graphemes), for query strings and paths, where it is percent-encoded. */
const unicode = (maxLength = 20) => fc.string({ unit: "grapheme", maxLength });

const UNIT_MS = { s: 1000n, m: 60_000n, h: 3_600_000n, d: 86_400_000n } as const;

interface Duration {
  text: string;
  /** Exact value in ms (BigInt, so that huge inputs are compared exactly). */
  ms: bigint;
}

/** Durations of the contract grammar (§1.5): `<int><unit>` groups with units s m h d, or a bare integer (seconds). */
const validDuration: fc.Arbitrary<Duration> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .array(
        fc.tuple(
          fc.constantFrom("", "", "", "0", "00"),
          fc.oneof({ weight: 6, arbitrary: fc.bigInt({ min: 0n, max: 60n }) }, fc.bigInt({ min: 0n, max: 10n ** 18n })),
          fc.constantFrom<keyof typeof UNIT_MS>("s", "s", "m", "h", "d"),
        ),
        { minLength: 1, maxLength: 4 },
      )
      .map((groups) => ({
        text: groups.map(([lead, n, unit]) => `${lead}${n}${unit}`).join(""),
        ms: groups.reduce((sum, [, n, unit]) => sum + n * UNIT_MS[unit], 0n),
      })),
  },
  fc.oneof({ weight: 4, arbitrary: fc.bigInt({ min: 0n, max: 20n }) }, fc.bigInt({ min: 0n, max: 10n ** 17n })).map((n) => ({
    text: String(n),
    ms: n * 1000n,
  })),
);

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Garbage that looks like a duration: signs, decimals, unknown units, spaces, huge numbers. */
const durationLike = fc.oneof(
  fc.constantFrom("", " ", "-1s", "+1s", "1.5s", "1.5", "1 s", "1s 2m", "1sec", "1w", "1y", "s", "1e3", "0x10", "1S", "1H", "ms", "1m30"),
  fc.tuple(fc.nat({ max: 1000 }), ascii(3)).map(([n, u]) => `${n}${u}`),
  fc.bigInt({ min: 0n, max: 10n ** 40n }).map((n) => `${n}d`),
  ascii(12),
);

/** Retry-delay expressions of the contract's grammar (§4.4), up to a modest depth. */
const validExpr: fc.Arbitrary<string> = fc
  .letrec<{ expr: string; call: string }>((tie) => {
    const ws = fc.constantFrom("", " ", "  ");
    const num = fc.oneof(
      fc.nat({ max: 100_000 }).map(String),
      fc.tuple(fc.nat({ max: 9999 }), fc.nat({ max: 999 })).map(([a, b]) => `${a}.${b}`),
      fc.nat({ max: 99 }).map((n) => `.${n}`),
    );
    return {
      expr: fc.oneof(
        { maxDepth: 4, depthIdentifier: "expr" },
        num,
        fc.constant("retried"),
        fc.tuple(tie("expr"), ws, fc.constantFrom("+", "-", "*", "/"), ws, tie("expr")).map((p) => p.join("")),
        fc.tuple(fc.constantFrom("-", "+", "- "), tie("expr")).map(([sign, e]) => `${sign}${e}`),
        fc.tuple(ws, tie("expr"), ws).map(([a, e, b]) => `(${a}${e}${b})`),
        tie("call"),
      ),
      call: fc.oneof(
        { maxDepth: 4, depthIdentifier: "expr" },
        fc.tuple(fc.constantFrom("exp", "sqrt", "abs", "floor", "ceil", "round"), tie("expr")).map(([f, a]) => `${f}(${a})`),
        fc.tuple(tie("expr"), tie("expr")).map(([a, b]) => `pow(${a}, ${b})`),
        fc
          .tuple(fc.constantFrom("min", "max"), fc.array(tie("expr"), { minLength: 1, maxLength: 4 }))
          .map(([f, args]) => `${f}(${args.join(",")})`),
      ),
    };
  })
  .expr.filter((e) => e.length <= 1000);

/** Strings built from the expression language's own tokens: mostly near-misses of valid expressions. */
const exprLike = fc.oneof(
  fc
    .array(fc.constantFrom("1", "0", ".5", "1.", "retried", "retry", "pow", "min", "max", "exp", "(", ")", ",", "+", "-", "*", "/", "^", " ", "e", "1e3"), {
      maxLength: 15,
    })
    .map((t) => t.join("")),
  fc.nat({ max: 200 }).map((n) => `${"(".repeat(n)}1${")".repeat(n)}`),
  fc.nat({ max: 200 }).map((n) => `${"min(".repeat(n)}1${")".repeat(n)}`),
  fc.nat({ max: 2000 }).map((n) => `1${"+1".repeat(n)}`),
  fc.nat({ max: 2000 }).map((n) => `${"-".repeat(n)}1`),
  fc.nat({ max: 400 }).map((n) => "9".repeat(n)),
  fc.constantFrom("", "constructor", "__proto__(1)", "toString(1)", "retried()", "pow(1)", "min()", "1000 * retried", "NaN", "Infinity"),
  ascii(30),
);

/** Cron expressions of five valid fields (minute hour day-of-month month day-of-week), optionally with CRON_TZ. */
const CRON_FIELDS: [number, number][] = [
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 6],
];

function cronField([lo, hi]: [number, number]): fc.Arbitrary<string> {
  const value = fc.integer({ min: lo, max: hi });
  const range = fc.tuple(value, value).map(([a, b]) => (a <= b ? `${a}-${b}` : `${b}-${a}`));
  const step = fc.integer({ min: 1, max: hi - lo });
  const item = fc.oneof(value.map(String), range, fc.tuple(range, step).map(([r, s]) => `${r}/${s}`));
  return fc.oneof(
    fc.constant("*"),
    step.map((s) => `*/${s}`),
    fc.array(item, { minLength: 1, maxLength: 3 }).map((xs) => xs.join(",")),
  );
}

const validCron = fc
  .tuple(
    fc.constantFrom("", "", "CRON_TZ=UTC ", "CRON_TZ=America/New_York ", "CRON_TZ=Asia/Kolkata ", "CRON_TZ=Europe/Berlin "),
    fc.tuple(...CRON_FIELDS.map(cronField)),
  )
  .map(([tz, fields]) => `${tz}${fields.join(" ")}`);

/** Cron-looking strings: valid and invalid tokens, wrong field counts, odd whitespace, bad zones. */
const cronLike = fc.oneof(
  fc
    .tuple(
      fc.constantFrom("", "CRON_TZ=", "CRON_TZ= ", "CRON_TZ=Nope/Zone ", "CRON_TZ=UTC ", "CRON_TZ=utc ", "cron_tz=UTC "),
      fc.array(
        fc.constantFrom("*", "?", "L", "W", "#", "*/0", "*/5", "*/61", "5-3", "0-59", "60", "24", "32", "13", "7", "8", "-1", "1,2", ",", "1,,2", "jan", "MON", "5#2", "15W", "", "a", "*/", "/5", "1-", "0x1"),
        { minLength: 0, maxLength: 7 },
      ),
      fc.constantFrom(" ", "  ", "\t", " \t "),
    )
    .map(([tz, fields, sep]) => `${tz}${fields.join(sep)}`),
  fc.constantFrom("@daily", "@every 5m", "* * * * * *", "* * * *", "0 0 30 2 *", "0 0 31 4 *"),
  ascii(30),
);

/** Values of the Upstash-Flow-Control-Value grammar (§3.2), with near-misses. */
const flowValue = fc.oneof(
  fc
    .tuple(
      fc.array(
        fc.tuple(
          fc.constantFrom("parallelism", "rate", "period", "Parallelism", "RATE", "bogus", ""),
          fc.constantFrom("=", " = ", "", "=="),
          fc.oneof(fc.nat({ max: 50 }).map(String), validDuration.map((d) => d.text), fc.constantFrom("0", "-1", "1.5", "", "x")),
        ),
        { minLength: 1, maxLength: 4 },
      ),
      fc.constantFrom(",", ", ", " , ", ";"),
    )
    .map(([pairs, sep]) => pairs.map((p) => p.join("")).join(sep)),
  ascii(20),
);

const urlValue = fc.oneof(
  { weight: 3, arbitrary: fc.constant("DEST") },
  fc.webUrl(),
  fc.constantFrom("ftp://example.com/", "http://", "https://[::1", "/relative", "example.com", "http:/example.com", "", " "),
  ascii(20),
);

const methodValue = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "get", "Post", " put ") },
  fc.constantFrom("HEAD", "OPTIONS", "CONNECT", "TRACE", "", "POST, GET"),
  ascii(10),
);

const retriesValue = fc.oneof(
  { weight: 3, arbitrary: fc.nat({ max: 30 }).map(String) },
  fc.constantFrom("-1", "1e3", "0x10", " 3 ", "3.0", "", "99999999999999999999", "9007199254740993"),
  ascii(8),
);

const notBeforeValue = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 60, max: 30 * 86_400 }).map((s) => String(Math.floor(Date.now() / 1000) + s)) },
  fc.integer({ min: 0, max: 1_000_000 }).map((s) => String(Math.floor(Date.now() / 1000) - s)),
  fc.constant(String(Date.now())),
  fc.constantFrom("", "-1", "1.5", "9".repeat(30), "tomorrow"),
  ascii(12),
);

const redactValue = fc.oneof(
  fc
    .array(fc.constantFrom("body", "header", "headers", "header[X-Test]", "header[]", "header[", "Body", "bogus", " body "), {
      minLength: 1,
      maxLength: 4,
    })
    .map((xs) => xs.join(",")),
  ascii(20),
);

const labelValue = fc.oneof(
  fc.array(fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/), { minLength: 1, maxLength: 4 }).map((xs) => xs.join(",")),
  fc.constantFrom("", ",", "a,", ",a", "a,,b", "x".repeat(257)),
  ascii(20),
);

const headerName = fc.stringMatching(/^[A-Za-z0-9-]{1,16}$/);

/** Values for a callback sub-setting, by name. */
const callbackSub = fc.oneof(
  fc.tuple(fc.constant("retries"), retriesValue),
  fc.tuple(fc.constant("retry-delay"), fc.oneof(validExpr, exprLike)),
  fc.tuple(fc.constant("timeout"), fc.oneof(validDuration.map((d) => d.text), durationLike)),
  fc.tuple(fc.constant("delay"), fc.oneof(validDuration.map((d) => d.text), durationLike)),
  fc.tuple(fc.constant("method"), methodValue),
  fc.tuple(headerName.map((h) => `forward-${h}`), ascii(15)),
  fc.tuple(fc.constantFrom("workflow-runid", "workflow-calltype", "forward-", "bogus", "x"), ascii(10)),
);

/** One configuration entry: a lowercase Upstash name and a value. */
type Entry = [string, string];

/** Timeouts within the test configuration's MAX_TIMEOUT (10s, vitest.config.ts). */
const validTimeout = fc.oneof(fc.integer({ min: 1, max: 10 }).map((n) => `${n}s`), fc.constantFrom("1", "10", "0m5s"));
/** Delays within MAX_DELAY (365d). */
const validDelay = fc.oneof(
  fc.integer({ min: 0, max: 86_400 }).map((n) => `${n}s`),
  validDuration.filter((d) => d.ms <= 365n * 86_400_000n).map((d) => d.text),
);

/** A callback's own settings (§3.2), each optional and valid. */
const validCallbackSubs = fc
  .record(
    {
      retries: fc.nat({ max: 30 }).map((v): Entry => ["retries", String(v)]),
      retryDelay: validExpr.map((v): Entry => ["retry-delay", v]),
      timeout: validTimeout.map((v): Entry => ["timeout", v]),
      delay: validDelay.map((v): Entry => ["delay", v]),
      method: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE").map((v): Entry => ["method", v]),
      forward: fc.tuple(headerName, ascii(15)).map(([h, v]): Entry => [`forward-${h}`, v]),
    },
    { requiredKeys: [] },
  )
  .map((r) => Object.values(r));

/** Every publish configuration header of §3.1, each optional and valid. */
const validConfig: fc.Arbitrary<Entry[]> = fc
  .record(
    {
      method: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "get", "Post", " put ").map((v): Entry[] => [["upstash-method", v]]),
      delay: validDelay.map((v): Entry[] => [["upstash-delay", v]]),
      notBefore: fc
        .integer({ min: -86_400, max: 30 * 86_400 })
        .map((s): Entry[] => [["upstash-not-before", String(Math.floor(Date.now() / 1000) + s)]]),
      retries: fc.nat({ max: 30 }).map((v): Entry[] => [["upstash-retries", String(v)]]),
      retryDelay: validExpr.map((v): Entry[] => [["upstash-retry-delay", v]]),
      timeout: validTimeout.map((v): Entry[] => [["upstash-timeout", v]]),
      callback: fc.oneof(fc.constant("DEST"), fc.webUrl()).map((v): Entry[] => [["upstash-callback", v]]),
      failureCallback: fc.oneof(fc.constant("DEST"), fc.webUrl()).map((v): Entry[] => [["upstash-failure-callback", v]]),
      callbackSubs: validCallbackSubs.map((subs): Entry[] => subs.map(([k, v]) => [`upstash-callback-${k}`, v])),
      failureSubs: validCallbackSubs.map((subs): Entry[] => subs.map(([k, v]) => [`upstash-failure-callback-${k}`, v])),
      flow: fc
        .tuple(
          fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/),
          fc.oneof(
            fc.integer({ min: 1, max: 50 }).map((n) => `parallelism=${n}`),
            fc.integer({ min: 1, max: 50 }).map((n) => `rate=${n}`),
            fc.tuple(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 604_800 })).map(([r, p]) => `rate=${r}, period=${p}s`),
            fc.tuple(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 50 })).map(([a, b]) => `parallelism=${a},rate=${b}`),
          ),
        )
        .map(([key, value]): Entry[] => [
          ["upstash-flow-control-key", key],
          ["upstash-flow-control-value", value],
        ]),
      label: fc
        .array(fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/), { minLength: 1, maxLength: 4 })
        .map((xs): Entry[] => [["upstash-label", xs.join(",")]]),
      redact: fc
        .subarray(["body", "header", "headers", "header[X-Test]", " Body "], { minLength: 1 })
        .map((xs): Entry[] => [["upstash-redact-fields", xs.join(",")]]),
      dedupId: fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/).map((v): Entry[] => [["upstash-deduplication-id", v]]),
      contentDedup: fc.constantFrom("true", "false").map((v): Entry[] => [["upstash-content-based-deduplication", v]]),
      forward: fc.array(fc.tuple(headerName, ascii(20)), { maxLength: 3 }).map((fw): Entry[] => fw.map(([k, v]) => [`upstash-forward-${k}`, v])),
      headerForward: fc.constantFrom("true", "false").map((v): Entry[] => [["upstash-header-forward", v]]),
    },
    { requiredKeys: [] },
  )
  .map((r) => Object.values(r).flat());

/** One configuration entry that is likely wrong: garbage or near-miss values for any header, or an unknown header. */
const garbageEntry: fc.Arbitrary<Entry> = fc.oneof(
  methodValue.map((v): Entry => ["upstash-method", v]),
  durationLike.map((v): Entry => ["upstash-delay", v]),
  notBeforeValue.map((v): Entry => ["upstash-not-before", v]),
  retriesValue.map((v): Entry => ["upstash-retries", v]),
  exprLike.map((v): Entry => ["upstash-retry-delay", v]),
  durationLike.map((v): Entry => ["upstash-timeout", v]),
  urlValue.map((v): Entry => ["upstash-callback", v]),
  urlValue.map((v): Entry => ["upstash-failure-callback", v]),
  callbackSub.map(([k, v]): Entry => [`upstash-callback-${k}`, v]),
  callbackSub.map(([k, v]): Entry => [`upstash-failure-callback-${k}`, v]),
  fc.oneof(fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/), ascii(20)).map((v): Entry => ["upstash-flow-control-key", v]),
  flowValue.map((v): Entry => ["upstash-flow-control-value", v]),
  labelValue.map((v): Entry => ["upstash-label", v]),
  redactValue.map((v): Entry => ["upstash-redact-fields", v]),
  fc.oneof(ascii(20), fc.constant("d".repeat(600))).map((v): Entry => ["upstash-deduplication-id", v]),
  fc.oneof(fc.constantFrom("TRUE", "", "yes"), ascii(5)).map((v): Entry => ["upstash-content-based-deduplication", v]),
  fc.constantFrom("yes", "1", "").map((v): Entry => ["upstash-header-forward", v]),
  headerName.map((h): Entry => [`upstash-x-${h.toLowerCase()}`, "1"]),
);

/** A valid configuration with zero to two likely-wrong entries added: about a third of the cases are fully valid. */
const configEntries: fc.Arbitrary<Entry[]> = fc
  .tuple(validConfig, fc.array(garbageEntry, { maxLength: 2 }))
  .map(([valid, garbage]) => [...valid, ...garbage]);

/** Where each entry goes: a header, or the lowercase query key of §1.7 (occasionally mis-cased, so not config). */
const placements = fc.array(fc.constantFrom("header", "header", "query", "Query"), { minLength: 40, maxLength: 40 });

/** Destinations: URL-ish strings with odd schemes, hosts, ports and path segments, names, escapes, Unicode. */
const destinations = (() => {
  const scheme = fc.constantFrom("http://", "https://", "HTTP://", "Https://", "http:/", "https:/", "http:", "ftp://", "file:///", "javascript:", "//", "", "ws://");
  const host = fc.oneof(
    fc.domain(),
    fc.ipV4(),
    fc.ipV6().map((h) => `[${h}]`),
    fc.constantFrom("", "localhost", "127.0.0.1", "[::1]", "例え.jp", "xn--r8jz45g.jp", "a..b", "-a.com", "%41.com", "exa mple.com", "[::1", "user:pass@example.com", "@", ":"),
    ascii(15),
    unicode(8),
  );
  const port = fc.constantFrom("", "", ":80", ":0", ":65535", ":65536", ":99999", ":abc", ":");
  const segment = fc.oneof(
    ascii(10),
    unicode(6),
    fc.constantFrom("..", ".", "%2F", "%zz", "%", "%00", "%C3%A9", "%FF", "é", "🙂", "a b", "?", "#", "?x=1&upstash-retries=2", "&", "=", ";", "\\"),
  );
  const path = fc.array(segment, { maxLength: 4 }).map((s) => (s.length ? `/${s.join("/")}` : ""));
  const escapes = fc.array(fc.constantFrom("%", "%2", "%zz", "%00", "%2F", "%3F", "%23", "%25", "%C3%A9", "%FF", "a", "/"), { maxLength: 8 }).map((xs) => xs.join(""));
  return fc.oneof(
    { weight: 4, arbitrary: fc.tuple(scheme, host, port, path).map((p) => p.join("")) },
    fc.webUrl({ withQueryParameters: true, withFragments: true }),
    fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/),
    ascii(40),
    unicode(20),
    escapes,
    fc.constantFrom("api/llm", "api/x", "", " ", "http://", "https://", "http:///x"),
  );
})();

/** Query keys for filters: every key some endpoint knows, near-misses, and random ones. */
const FILTER_KEYS = [
  "messageId", "messageIds", "dlqIds", "url", "host", "path", "topicName", "scheduleId", "queueName", "label",
  "flowControlKey", "callerIp", "callerIP", "responseStatus", "state", "cursor", "count", "order", "fromDate", "toDate",
  "qstash_token", "labeel", "Label", "callerip", "upstash-retries",
];

const filterValue = fc.oneof(
  fc.constantFrom(
    "", " ", ",", "a,,b", "a,", "0", "-1", "1", "100", "101", "500", "1000", "asc", "DESC", "latestFirst", "earliestFirst",
    "9".repeat(400), "msg_x", "CANCELLED", "CANCELED", "IN_PROGRESS", "DELIVERED", "bogus", "%", "%zz", "%00", "a%2Cb",
    "https://example.com/x?y=1", "example.com", "/x", "_%", "\\", "'", "\"", "1; DROP TABLE messages",
  ),
  fc.nat().map(String),
  fc.bigInt({ min: 0n, max: 10n ** 30n }).map(String),
  fc.array(fc.stringMatching(/^[A-Za-z0-9_]{1,8}$/), { minLength: 1, maxLength: 8 }).map((xs) => xs.join(",")),
  ascii(20),
  unicode(12),
);

const filterPairs = fc
  .array(
    fc.tuple(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...FILTER_KEYS) }, ascii(10), unicode(5)), filterValue, fc.boolean()),
    { maxLength: 6 },
  )
  // At most 20 values in all: the known 100-bound-variable bug (below) is tested on its own, not rediscovered here.
  .filter((pairs) => pairs.reduce((n, [, v]) => n + v.split(",").length, 0) <= 20);

interface FilterEndpoint {
  method: string;
  path: string;
  /** Unknown keys are refused with 400 (contract §1.9); otherwise they are ignored. */
  strict: boolean;
  /** The filter keys the endpoint takes (contract §2.4–2.6), aliases included. */
  known: string[];
}

const DLQ_KNOWN = ["messageId", "messageIds", "dlqIds", "url", "topicName", "scheduleId", "queueName", "label", "flowControlKey", "callerIp", "callerIP", "responseStatus"];
const LOG_KNOWN = ["messageId", "messageIds", "state", "url", "host", "path", "topicName", "scheduleId", "queueName", "label", "flowControlKey", "callerIp", "callerIP"];
const CANCEL_KNOWN = ["messageId", "messageIds", "topicName", "queueName", "url", "host", "path", "label", "flowControlKey", "scheduleId", "callerIp", "callerIP"];
/** Paging and authentication keys: never filters, never refused as unknown. */
const NOT_FILTERS = ["cursor", "count", "order", "fromDate", "toDate", "qstash_token"];

const FILTER_ENDPOINTS: FilterEndpoint[] = [
  { method: "GET", path: "/v2/dlq", strict: true, known: DLQ_KNOWN },
  { method: "DELETE", path: "/v2/dlq", strict: true, known: DLQ_KNOWN },
  { method: "POST", path: "/v2/dlq/retry", strict: true, known: DLQ_KNOWN },
  { method: "GET", path: "/v2/logs", strict: false, known: LOG_KNOWN },
  { method: "GET", path: "/v2/events", strict: false, known: LOG_KNOWN },
  { method: "DELETE", path: "/v2/messages", strict: true, known: CANCEL_KNOWN },
];

/** True when the contract requires a 400 for these query pairs: an unknown key where unknown keys are refused, or an empty filter value. */
function filterMustFail(e: FilterEndpoint, query: URLSearchParams): boolean {
  for (const [key, value] of query) {
    if (key.toLowerCase().startsWith("upstash-") || NOT_FILTERS.includes(key)) continue;
    if (!e.known.includes(key)) {
      if (e.strict) return true;
      continue;
    }
    if (value.trim() === "") return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Setup and cleanup

beforeAll(async () => {
  tenant = await freshTenant();
  destUrl = dest(`${uniqueKey("fuzz")}/ok`);
  const queue = await sendOk("POST", "/v2/queues", [["content-type", "application/json"]], JSON.stringify({ queueName: PAUSED_QUEUE, parallelism: 1, paused: true }));
  expect(queue.status).toBe(200);
  const schedule = await sendOk("POST", `/v2/schedules/${destUrl}`, [
    ["upstash-cron", RARE_CRON],
    ["upstash-schedule-id", PAUSED_SCHEDULE],
    ["upstash-delay", "1h"],
  ]);
  expect(schedule.status).toBe(200);
  expect((await sendOk("POST", `/v2/schedules/${PAUSED_SCHEDULE}/pause`)).status).toBe(200);
});

afterAll(async () => {
  // Cancel everything still pending (bulk cancel takes at most 500 per call), then remove schedules and the queue.
  for (let i = 0; i < 1000; i++) {
    const a = await sendOk("DELETE", "/v2/messages");
    expect(a.status).toBe(200);
    if ((JSON.parse(a.text) as { cancelled: number }).cancelled === 0) break;
  }
  const list = JSON.parse((await sendOk("GET", "/v2/schedules")).text) as { scheduleId: string }[];
  for (const s of list) expect((await sendOk("DELETE", `/v2/schedules/${encodeURIComponent(s.scheduleId)}`)).status).toBe(200);
  expect((await sendOk("DELETE", `/v2/queues/${PAUSED_QUEUE}`)).status).toBe(200);
  const pending = await dbOf(tenant).prepare("SELECT count(*) AS n FROM messages WHERE tenant_id = ?1 AND finished_at IS NULL AND cancel_requested = 0")
    .bind(tenant.tenantId)
    .first<number>("n");
  expect(Number(pending)).toBe(0);
  // The long form leaves thousands of messages and hundreds of schedules to remove.
}, Math.max(120_000, (LONG_RUNS ?? 0) * 300));

// ---------------------------------------------------------------------------------------------------------------
// HTTP properties

/** Builds a publish (or, when the case sets a delay, an enqueue into the paused queue) from configuration entries. */
function buildPublish(entries: Entry[], where: string[]): { path: string; headers: [string, string][] } {
  const headers: [string, string][] = [];
  const query: string[] = [];
  entries.forEach(([name, raw], i) => {
    const value = raw === "DEST" ? dest("fuzz-callback/ok") : raw;
    const place = where[i % where.length];
    if (place === "header") headers.push([name, value]);
    else query.push(`${encodeURIComponent(place === "Query" ? name.toUpperCase() : name)}=${encodeURIComponent(value)}`);
  });
  const timed = entries.some(([name]) => name === "upstash-delay" || name === "upstash-not-before");
  // Without its own delay a case waits an hour, so nothing reaches the destination during the run.
  if (!timed) headers.push(["upstash-delay", "1h"]);
  const target = `${destUrl}${query.length ? `?${query.join("&")}` : ""}`;
  return { path: timed ? `/v2/enqueue/${PAUSED_QUEUE}/${target}` : `/v2/publish/${target}`, headers };
}

describe("fuzz: publish configuration", () => {
  it(
    "every header of §3 and its query form, valid or not: 200/202 storing one message, or a 4xx storing nothing",
    async () => {
      await fc.assert(
        fc.asyncProperty(configEntries, placements, fc.oneof(ascii(20), unicode(10)), async (entries, where, body) => {
          const { path, headers } = buildPublish(entries, where);
          const before = await counts();
          const a = await send("POST", path, headers, body);
          fc.pre(a !== null);
          const what = describeCase("POST", path, headers);
          const out = await expectWellFormed(what, a!, before);
          if (out !== null) {
            expect([200, 202], what).toContain(a!.status);
            expect(String((out as { messageId?: unknown }).messageId), what).toMatch(/^msg_/);
            const after = await counts();
            // A new message is stored once; a deduplicated publish (202) stores nothing new.
            expect(after.messages - before.messages, what).toBe(a!.status === 200 ? 1 : 0);
          }
        }),
        { numRuns: runs(300) },
      );
    },
    timeoutFor(300),
  );
});

describe("fuzz: destinations", () => {
  it(
    "random destinations: accepted ones are stored as absolute http(s) URLs with a host; names are unknown groups (404)",
    async () => {
      await fc.assert(
        fc.asyncProperty(destinations, async (destination) => {
          const path = `/v2/publish/${destination}`;
          const headers: [string, string][] = [["upstash-delay", "1h"]];
          const before = await counts();
          const a = await send("POST", path, headers, "x");
          fc.pre(a !== null);
          const what = describeCase("POST", path, headers);
          const out = await expectWellFormed(what, a!, before);
          if (/^[A-Za-z0-9._-]+$/.test(destination) && !/^\.{1,2}$/.test(destination)) {
            expect(a!.status, `a name is a URL group, and this tenant has none: ${what}`).toBe(404);
          }
          if (out !== null) {
            const id = (out as { messageId: string }).messageId;
            const stored = JSON.parse((await sendOk("GET", `/v2/messages/${id}`)).text) as { url: string };
            const url = new URL(stored.url);
            expect(["http:", "https:"], what).toContain(url.protocol);
            expect(url.hostname.length, what).toBeGreaterThan(0);
          }
        }),
        { numRuns: runs(200) },
      );
    },
    timeoutFor(200),
  );
});

describe("fuzz: durations", () => {
  const s = () => settings(env);
  /** Where a duration can go, and whether the configured limits accept a given value (contract §1.5, §3, §7). */
  const SLOTS: { header: string; extra: [string, string][]; accepts: (ms: bigint) => boolean }[] = [
    { header: "upstash-delay", extra: [], accepts: (ms) => ms <= BigInt(s().maxDelayMs) },
    { header: "upstash-timeout", extra: [], accepts: (ms) => ms > 0n && ms <= BigInt(s().maxTimeoutMs) },
    { header: "upstash-callback-delay", extra: [["upstash-callback", dest("fuzz-callback/ok")]], accepts: (ms) => ms <= BigInt(s().maxDelayMs) },
    { header: "upstash-failure-callback-timeout", extra: [], accepts: (ms) => ms > 0n && ms <= BigInt(s().maxTimeoutMs) },
    { header: "upstash-flow-control-value", extra: [["upstash-flow-control-key", "fuzz-period"]], accepts: (ms) => ms >= 1000n && ms <= 7n * 86_400_000n },
  ];

  async function tryDuration(slot: number, text: string) {
    const { header, extra } = SLOTS[slot];
    const value = header === "upstash-flow-control-value" ? `rate=1, period=${text}` : text;
    const headers: [string, string][] = [...extra, [header, value]];
    if (header !== "upstash-delay") headers.push(["upstash-delay", "1h"]);
    // Enqueued into the paused queue: a short delay must not lead to a delivery.
    const path = `/v2/enqueue/${PAUSED_QUEUE}/${destUrl}`;
    const before = await counts();
    const a = await send("POST", path, headers);
    return { a, before, what: describeCase("POST", path, headers) };
  }

  it(
    "grammar-valid durations are accepted exactly when within the limit of their header",
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.nat({ max: SLOTS.length - 1 }), validDuration, async (slot, d) => {
          const { a, before, what } = await tryDuration(slot, d.text);
          fc.pre(a !== null);
          await expectWellFormed(what, a!, before);
          const ok = d.ms <= MAX_SAFE && SLOTS[slot].accepts(d.ms);
          expect(a!.status, `${what}\n(${d.ms} ms)`).toBe(ok ? 200 : 400);
        }),
        { numRuns: runs(200) },
      );
    },
    timeoutFor(200),
  );

  it(
    "duration-like garbage on every duration header: 200 or 400, never a 5xx",
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.nat({ max: SLOTS.length - 1 }), durationLike, async (slot, text) => {
          const { a, before, what } = await tryDuration(slot, text);
          fc.pre(a !== null);
          await expectWellFormed(what, a!, before);
          expect([200, 400], what).toContain(a!.status);
        }),
        { numRuns: runs(100) },
      );
    },
    timeoutFor(100),
  );
});

describe("fuzz: retry-delay expressions", () => {
  async function tryExpr(header: string, expr: string) {
    const headers: [string, string][] = [[header, expr], ["upstash-delay", "1h"]];
    const path = `/v2/publish/${destUrl}`;
    const before = await counts();
    const a = await send("POST", path, headers);
    return { a, before, what: describeCase("POST", path, headers) };
  }

  it(
    "grammar-valid expressions are accepted on Upstash-Retry-Delay and the callback forms",
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom("upstash-retry-delay", "upstash-callback-retry-delay", "upstash-failure-callback-retry-delay"), validExpr, async (header, expr) => {
          const { a, before, what } = await tryExpr(header, expr);
          // Header values lose surrounding whitespace, which changes nothing for a valid expression.
          fc.pre(a !== null);
          await expectWellFormed(what, a!, before);
          expect(a!.status, what).toBe(200);
        }),
        { numRuns: runs(100) },
      );
    },
    timeoutFor(100),
  );

  it(
    "random and near-miss expressions: 200 or 400, never a 5xx",
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.oneof(exprLike, ascii(40)), async (expr) => {
          const { a, before, what } = await tryExpr("upstash-retry-delay", expr);
          fc.pre(a !== null);
          await expectWellFormed(what, a!, before);
          expect([200, 400], what).toContain(a!.status);
        }),
        { numRuns: runs(100) },
      );
    },
    timeoutFor(100),
  );
});

describe("fuzz: schedules", () => {
  /** The cron the paused schedule holds: the last one accepted. */
  let lastCron = RARE_CRON;

  async function upsertCron(cron: string) {
    const path = `/v2/schedules/${destUrl}`;
    const headers: [string, string][] = [
      ["upstash-cron", cron],
      ["upstash-schedule-id", PAUSED_SCHEDULE],
      ["upstash-delay", "1h"],
    ];
    const before = await counts();
    const a = await send("POST", path, headers);
    return { a, before, what: describeCase("POST", path, headers) };
  }

  async function storedSchedule(): Promise<{ cron: string; isPaused: boolean }> {
    return JSON.parse((await sendOk("GET", `/v2/schedules/${PAUSED_SCHEDULE}`)).text) as { cron: string; isPaused: boolean };
  }

  it(
    "valid cron expressions are accepted and stored as sent; the schedule stays paused",
    async () => {
      await fc.assert(
        fc.asyncProperty(validCron, async (cron) => {
          const { a, before, what } = await upsertCron(cron);
          fc.pre(a !== null);
          await expectWellFormed(what, a!, before);
          expect(a!.status, what).toBe(200);
          lastCron = cron;
          expect(await storedSchedule(), what).toEqual(expect.objectContaining({ cron, isPaused: true }));
        }),
        { numRuns: runs(100) },
      );
    },
    timeoutFor(100),
  );

  it(
    "cron-like strings: 200 or 400; a refused upsert leaves the schedule as it was",
    async () => {
      await fc.assert(
        fc.asyncProperty(cronLike, async (cron) => {
          const { a, before, what } = await upsertCron(cron);
          fc.pre(a !== null);
          await expectWellFormed(what, a!, before);
          expect([200, 400], what).toContain(a!.status);
          if (a!.status === 200) lastCron = cron.trim().replace(/\s+/g, " ");
          const stored = await storedSchedule();
          expect(stored.cron, what).toBe(lastCron);
          expect(stored.isPaused, what).toBe(true);
        }),
        { numRuns: runs(150) },
      );
    },
    timeoutFor(150),
  );

  it(
    "random schedule ids: accepted exactly when they follow the name grammar (§1.4)",
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.stringMatching(/^[A-Za-z0-9._-]{1,30}$/), ascii(30), fc.constant("x".repeat(257))), async (id) => {
          // An empty id means "generate one"; "." and ".." are a known bug tested on their own (below).
          fc.pre(id.trim() !== "" && id.trim() !== PAUSED_SCHEDULE && !/^\.{1,2}$/.test(id.trim()));
          const path = `/v2/schedules/${destUrl}`;
          const headers: [string, string][] = [["upstash-cron", RARE_CRON], ["upstash-schedule-id", id], ["upstash-delay", "1h"]];
          const before = await counts();
          const a = await send("POST", path, headers);
          fc.pre(a !== null);
          const what = describeCase("POST", path, headers);
          const out = await expectWellFormed(what, a!, before);
          const valid = /^[A-Za-z0-9._-]+$/.test(id.trim()) && id.trim().length <= 256;
          expect(a!.status, what).toBe(valid ? 200 : 400);
          if (out !== null) expect(out, what).toEqual({ scheduleId: id.trim() });
          // Remove it again so the tenant stays under MAX_SCHEDULES (small in the worker tests).
          if (a!.status === 200) await send("DELETE", `/v2/schedules/${encodeURIComponent(id.trim())}`, []);
        }),
        { numRuns: runs(50) },
      );
    },
    timeoutFor(50),
  );
});

// SERVER BUG: names made only of dots pass the name grammar (NAME_RE in src/core/ids.ts, checked in
// src/routes/schedules.ts for Upstash-Schedule-Id and by checkQueueName in src/delivery/publish.ts for
// POST /v2/queues and batch "queue"), so "." and ".." are created, but the URL parser (client and server
// alike) resolves them as dot-segments, also when written %2E%2E: GET, DELETE, pause and resume of
// /v2/schedules/.. land on /v2/ (404 "not found: DELETE /v2/"), and /v2/schedules/. on "a schedule id is
// required". The schedule then fires forever and the queue counts against MAX_QUEUES, with no way to remove
// them through the API. Refusing "." and ".." with a 400 at creation would fix it.
describe("fuzz: names that cannot be addressed", () => {
  const cases: { what: string; create: (name: string) => [string, string, [string, string][], string | undefined]; path: (name: string) => string; table: string; column: string }[] = [
    {
      what: "schedule id",
      create: (name) => ["POST", `/v2/schedules/${dest("fuzz-dots/ok")}`, [["upstash-cron", RARE_CRON], ["upstash-schedule-id", name]], undefined],
      path: (name) => `/v2/schedules/${encodeURIComponent(name)}`,
      table: "schedules",
      column: "id",
    },
    {
      what: "queue name",
      create: (name) => ["POST", "/v2/queues", [["content-type", "application/json"]], JSON.stringify({ queueName: name, parallelism: 1 })],
      path: (name) => `/v2/queues/${encodeURIComponent(name)}`,
      table: "queues",
      column: "name",
    },
  ];
  for (const c of cases) {
    for (const name of [".", ".."]) {
      it(`a ${c.what} of "${name}" is refused, or can be deleted again`, async () => {
        // A tenant of its own: what this creates cannot be removed through the API.
        const own = await freshTenant();
        try {
          const [method, path, headers, body] = c.create(name);
          const created = await sendOk(method, path, headers, body, own.token);
          if (created.status >= 400) return;
          const deleted = await sendOk("DELETE", c.path(name), [], undefined, own.token);
          expect(deleted.status, `DELETE ${c.path(name)} → ${deleted.status} ${deleted.text}`).toBe(200);
        } finally {
          await dbOf(own).prepare(`DELETE FROM ${c.table} WHERE tenant_id = ?1 AND ${c.column} = ?2`).bind(own.tenantId, name).run();
        }
      });
    }
  }
});

describe("fuzz: list and bulk filters", () => {
  it(
    "random filters on the DLQ, logs and bulk cancel: 2xx or a JSON 400; unknown keys and empty values refused where the contract says so",
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.nat({ max: FILTER_ENDPOINTS.length - 1 }), filterPairs, async (which, pairs) => {
          const e = FILTER_ENDPOINTS[which];
          // Each pair is either form-encoded or written raw (percent-escapes and all).
          const query = pairs.map(([k, v, raw]) => (raw ? `${k}=${v}` : `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)).join("&");
          const path = `${e.path}${query ? `?${query}` : ""}`;
          let seen: URLSearchParams;
          try {
            seen = new URL(`${BASE}${path}`).searchParams;
          } catch {
            fc.pre(false);
            return;
          }
          const before = await counts();
          const a = await send(e.method, path);
          fc.pre(a !== null);
          const what = describeCase(e.method, path, []);
          await expectWellFormed(what, a!, before);
          if (filterMustFail(e, seen)) expect(a!.status, what).toBe(400);
        }),
        { numRuns: runs(300) },
      );
    },
    timeoutFor(300),
  );

  // SERVER BUG: every value of a filter becomes one bound SQL parameter (src/db/where.ts, WhereBuilder.in, used by
  // listDlq in src/db/dlq.ts, listEvents in src/db/logs.ts and selectPendingIds in src/db/messages.ts). D1 allows
  // at most 100, so 100 values (99 plus the tenant id would still pass) end in
  // "D1_ERROR: variable number must be between ?1 and ?100" and a 500 "internal error" for a client input.
  // The contract sets no cap on filter values; a 400 naming a cap, or binding the list as one JSON parameter
  // (as cancelMessages does with json_each), would both be fine. The random filters above stay under 20 values.
  const many = Array.from({ length: 100 }, (_, i) => `v${i}`).join(",");
  for (const [method, path] of [
    ["GET", `/v2/dlq?label=${many}`],
    ["GET", `/v2/dlq?dlqIds=${many}`],
    ["DELETE", `/v2/dlq?messageId=${many}`],
    ["POST", `/v2/dlq/retry?dlqIds=${many}`],
    ["GET", `/v2/logs?label=${many}`],
    ["GET", `/v2/events?messageId=${many}`],
    ["DELETE", `/v2/messages?messageId=${many}`],
    ["DELETE", `/v2/messages?host=${many.split(",").slice(0, 25).join(",")}`],
  ] as const) {
    it(`${method} ${path.split("?")[0]}?${path.split("?")[1].split("=")[0]}=<${path.includes("host=") ? 25 : 100} values> is never a 5xx`, async () => {
      const before = await counts();
      const a = await sendOk(method, path);
      await expectWellFormed(`${method} ${path}`, a, before);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Pure-function properties

/** The outcome of a parser: "ok", or "400" for ApiError(400); anything else is rethrown and fails the property. */
function outcome(fn: () => void): "ok" | "400" {
  try {
    fn();
    return "ok";
  } catch (err) {
    if (err instanceof ApiError && err.status === 400 && err.message.length > 0) return "400";
    throw err;
  }
}

describe("fuzz: parseDuration and compileRetryDelay", () => {
  const anyString = fc.oneof(ascii(30), unicode(15), fc.string({ unit: "binary", maxLength: 20 }), durationLike, exprLike);

  it("parseDuration returns the exact value of grammar-valid durations, or a 400 when too large", () => {
    fc.assert(
      fc.property(validDuration, fc.constantFrom("", " ", "\t"), (d, pad) => {
        if (d.ms <= MAX_SAFE) expect(parseDuration(`${pad}${d.text}${pad}`, "H")).toBe(Number(d.ms));
        else expect(outcome(() => parseDuration(d.text, "H"))).toBe("400");
      }),
      { numRuns: runs(2000) },
    );
  });

  it("parseDuration on any string returns a safe non-negative integer or throws ApiError(400)", () => {
    fc.assert(
      fc.property(anyString, (text) => {
        let ms = 0;
        if (outcome(() => (ms = parseDuration(text, "Upstash-Delay"))) === "ok") {
          expect(Number.isSafeInteger(ms) && ms >= 0, `${JSON.stringify(text)} → ${ms}`).toBe(true);
        }
      }),
      { numRuns: runs(2000) },
    );
  });

  it("compileRetryDelay accepts grammar-valid expressions, which evaluate to numbers", () => {
    fc.assert(
      fc.property(validExpr, fc.nat({ max: 20 }), (expr, retried) => {
        const compiled = compileRetryDelay(expr);
        expect(typeof compiled.evaluate(retried)).toBe("number");
        const ms = retryDelayMs(compiled, retried, 86_400_000);
        expect(Number.isInteger(ms) && ms >= 0 && ms <= 86_400_000, `${expr} → ${ms}`).toBe(true);
      }),
      { numRuns: runs(2000) },
    );
  });

  it("compileRetryDelay on any string compiles or throws ApiError(400); what compiles evaluates without throwing", () => {
    fc.assert(
      fc.property(anyString, fc.nat({ max: 20 }), (text, retried) => {
        let compiled: ReturnType<typeof compileRetryDelay> | null = null;
        if (outcome(() => (compiled = compileRetryDelay(text, "Upstash-Retry-Delay"))) === "ok") {
          const ms = retryDelayMs(compiled!, retried, 86_400_000);
          expect(Number.isInteger(ms) && ms >= 0, `${JSON.stringify(text)} → ${ms}`).toBe(true);
        }
      }),
      { numRuns: runs(2000) },
    );
  });
});
