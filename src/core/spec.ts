/** Publish configuration (headers or their query-string form) parsed and validated into a MessageSpec. */
import type { Settings } from "../config";
import { checkUrl } from "./destination";
import { parseDuration, formatSeconds } from "./duration";
import { badRequest } from "./errors";
import { compileRetryDelay } from "./expr";
import { type HeaderMap, addHeader, invalidHeader, isForwardable } from "./headers";
import { type RedactSpec, parseRedact } from "./redact";

export const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;

/** Configuration of a callback or failure-callback message. */
export interface CallbackConfig {
  retries?: number;
  retryDelay?: string;
  timeoutMs?: number;
  delayMs?: number;
  method?: string;
  headers: HeaderMap;
}

/** The rate period of a flow-control key whose publisher set none, in seconds. */
export const DEFAULT_PERIOD_S = 1;

export interface FlowControl {
  key: string;
  parallelism?: number;
  rate?: number;
  periodS?: number;
}

/** Everything a publish asks for, except the destination and body. */
export interface MessageSpec {
  method: string;
  headers: HeaderMap;
  maxRetries: number;
  retryDelayExpr: string | null;
  timeoutMs: number | null;
  /** Earliest delivery time in ms; 0 when not delayed. */
  notBefore: number;
  callback: string | null;
  failureCallback: string | null;
  callbackConfig: CallbackConfig | null;
  failureCallbackConfig: CallbackConfig | null;
  labels: string[];
  flowControl: FlowControl | null;
  redact: RedactSpec | null;
  /** Explicit `Upstash-Deduplication-Id`, or null. */
  deduplicationId: string | null;
  contentBasedDeduplication: boolean;
}

/** Where configuration is read from: header names are case-insensitive; query keys are lowercase. */
export interface ConfigSource {
  get(name: string): string | undefined;
  /** Every configuration name present (lowercase), headers and query keys together. */
  names(): string[];
  /** Incoming request headers eligible for `Upstash-Header-Forward` (none for batch entries). */
  requestHeaders(): Iterable<[string, string]>;
}

/**
 * Headers win over query keys (contract §1.7). Both are read once into a map: a publish looks up some forty
 * names, and each `Headers.get` is a call into the runtime.
 */
export function requestConfig(headers: Headers, query: URLSearchParams | null): ConfigSource {
  const values = new Map<string, string>();
  const names: string[] = [];
  headers.forEach((value, key) => {
    const k = key.toLowerCase();
    if (!values.has(k)) names.push(k);
    values.set(k, value);
  });
  query?.forEach((value, k) => {
    if (values.has(k)) return; // a header wins; the first query value wins over later ones
    values.set(k, value);
    if (k.startsWith("upstash-")) names.push(k);
  });
  return {
    get: (name) => values.get(name.toLowerCase()),
    names: () => names.slice(),
    requestHeaders: () => headers.entries(),
  };
}

/** A batch entry's `headers` object (names in any case). */
export function objectConfig(obj: Record<string, unknown>): ConfigSource {
  const map = new Map<string, string>();
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v === "string") map.set(k.toLowerCase(), v);
    else if (typeof v === "number" || typeof v === "boolean") map.set(k.toLowerCase(), String(v));
    else throw badRequest(`header "${k}" must be a string`);
  }
  return {
    get: (name) => map.get(name.toLowerCase()),
    names: () => [...map.keys()],
    requestHeaders: () => [],
  };
}

const FORWARD = "upstash-forward-";
const CALLBACK = "upstash-callback-";
const FAILURE_CALLBACK = "upstash-failure-callback-";
/** Workflow protocol headers are passed through to the destination untouched. */
const WORKFLOW = "upstash-workflow-";

/** Headers that are read elsewhere or ignored on purpose: never a 400 for being unknown. */
const KNOWN = new Set([
  "upstash-method",
  "upstash-delay",
  "upstash-not-before",
  "upstash-retries",
  "upstash-retry-delay",
  "upstash-timeout",
  "upstash-callback",
  "upstash-failure-callback",
  "upstash-header-forward",
  "upstash-deduplication-id",
  "upstash-content-based-deduplication",
  "upstash-flow-control-key",
  "upstash-flow-control-value",
  "upstash-label",
  "upstash-redact-fields",
  "upstash-cron",
  "upstash-schedule-id",
  "upstash-queue-name",
  "upstash-telemetry-sdk",
  "upstash-telemetry-platform",
  "upstash-telemetry-runtime",
]);

export function parseMethod(value: string | undefined, header: string): string {
  if (value === undefined || value === "") return "POST";
  const upper = value.trim().toUpperCase();
  if (!(METHODS as readonly string[]).includes(upper)) {
    throw badRequest(`${header}: "${value}" is not supported; use one of ${METHODS.join(", ")}`);
  }
  return upper;
}

export function parseRetries(value: string, header: string, s: Settings): number {
  const v = value.trim();
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw badRequest(`${header}: "${value}" is not a non-negative integer (it counts retries: attempts = retries + 1)`);
  }
  return Math.min(Number(v), s.maxRetries);
}

export function parseTimeout(value: string, header: string, s: Settings): number {
  const ms = parseDuration(value, header);
  if (ms <= 0) throw badRequest(`${header}: the timeout must be greater than zero`);
  if (ms > s.maxTimeoutMs) {
    throw badRequest(`${header}: timeout ${formatSeconds(ms)} exceeds the maximum of ${formatSeconds(s.maxTimeoutMs)}`);
  }
  return ms;
}

export function parseDelay(value: string, header: string, s: Settings): number {
  const ms = parseDuration(value, header);
  if (ms > s.maxDelayMs) {
    throw badRequest(`${header}: delay ${formatSeconds(ms)} exceeds the maximum of ${formatSeconds(s.maxDelayMs)}`);
  }
  return ms;
}

/** `Upstash-Not-Before` is Unix seconds; a value that looks like milliseconds is refused with a hint. */
export function parseNotBefore(value: string, now: number, s: Settings): number {
  const v = value.trim();
  if (!/^\d+$/.test(v)) {
    throw badRequest(`Upstash-Not-Before: "${value}" is not a Unix timestamp in seconds`);
  }
  const seconds = Number(v);
  if (seconds > 99_999_999_999) {
    throw badRequest(
      `Upstash-Not-Before: ${value} looks like milliseconds; send Unix seconds (e.g. ${Math.floor(now / 1000) + 60})`,
    );
  }
  const ms = seconds * 1000;
  if (ms - now > s.maxDelayMs) {
    throw badRequest(`Upstash-Not-Before: ${value} is further away than the maximum delay of ${formatSeconds(s.maxDelayMs)}`);
  }
  return ms;
}

function parseDedupId(value: string | undefined): string | null {
  if (value === undefined) return null;
  const v = value.trim();
  if (v === "" || v.length > 512) throw badRequest("Upstash-Deduplication-Id must be 1 to 512 characters");
  return v;
}

function parseBool(value: string | undefined, header: string): boolean {
  if (value === undefined) return false;
  const v = value.trim().toLowerCase();
  if (v === "true") return true;
  if (v === "false") return false;
  throw badRequest(`${header}: "${value}" must be true or false`);
}

export function parseLabels(value: string | undefined): string[] {
  if (value === undefined) return [];
  const labels = value.split(",").map((l) => l.trim());
  if (labels.some((l) => l === "")) throw badRequest(`Upstash-Label: "${value}" has an empty label`);
  for (const l of labels) {
    if (l.length > 256) throw badRequest("Upstash-Label: a label may be at most 256 characters");
  }
  return labels;
}

/** `parallelism=<n>, rate=<n>, period=<duration>`: each problem named precisely. */
export function parseFlowControl(key: string | undefined, value: string | undefined): FlowControl | null {
  if (key === undefined && value === undefined) return null;
  if (key === undefined || key.trim() === "") {
    throw badRequest("Upstash-Flow-Control-Key is required when Upstash-Flow-Control-Value is set");
  }
  if (value === undefined || value.trim() === "") {
    throw badRequest("Upstash-Flow-Control-Value is required when Upstash-Flow-Control-Key is set (e.g. parallelism=5, rate=10, period=1m)");
  }
  const fc: FlowControl = { key: key.trim() };
  const seen = new Set<string>();
  for (const raw of value.split(",")) {
    const part = raw.trim();
    const eq = part.indexOf("=");
    if (eq < 0) {
      throw badRequest(`Upstash-Flow-Control-Value: "${part}" is not name=value; valid names are parallelism, rate and period`);
    }
    const name = part.slice(0, eq).trim().toLowerCase();
    const val = part.slice(eq + 1).trim();
    if (seen.has(name)) throw badRequest(`Upstash-Flow-Control-Value: "${name}" is given twice`);
    seen.add(name);
    if (name === "parallelism" || name === "rate") {
      if (!/^\d+$/.test(val) || Number(val) < 1 || !Number.isSafeInteger(Number(val))) {
        throw badRequest(`Upstash-Flow-Control-Value: ${name} must be an integer of at least 1, got "${val}"`);
      }
      fc[name] = Number(val);
    } else if (name === "period") {
      const ms = parseDuration(val, "Upstash-Flow-Control-Value period");
      if (ms < 1000 || ms > 7 * 86_400_000) {
        throw badRequest(`Upstash-Flow-Control-Value: period must be between 1s and 7d, got "${val}"`);
      }
      fc.periodS = Math.floor(ms / 1000);
    } else {
      throw badRequest(`Upstash-Flow-Control-Value: unknown name "${name}"; valid names are parallelism, rate and period`);
    }
  }
  if (fc.parallelism === undefined && fc.rate === undefined) {
    throw badRequest("Upstash-Flow-Control-Value: set parallelism, rate or both (period alone limits nothing)");
  }
  if (fc.periodS !== undefined && fc.rate === undefined) {
    throw badRequest("Upstash-Flow-Control-Value: period applies to rate; set rate too");
  }
  return fc;
}

function parseCallbackConfig(cfg: ConfigSource, prefix: string, display: string, s: Settings): CallbackConfig | null {
  const out: CallbackConfig = { headers: {} };
  let any = false;
  for (const name of cfg.names()) {
    if (!name.startsWith(prefix)) continue;
    const value = cfg.get(name) ?? "";
    const sub = name.slice(prefix.length);
    const header = display + canonicalSuffix(sub);
    any = true;
    if (sub === "retries") out.retries = parseRetries(value, header, s);
    else if (sub === "retry-delay") {
      compileRetryDelay(value, header);
      out.retryDelay = value;
    } else if (sub === "timeout") out.timeoutMs = parseTimeout(value, header, s);
    else if (sub === "delay") out.delayMs = parseDelay(value, header, s);
    else if (sub === "method") out.method = parseMethod(value, header);
    else if (sub.startsWith("forward-") && sub.length > "forward-".length) {
      addSendable(out.headers, sub.slice("forward-".length), value, header);
    } else if (sub.startsWith("workflow-") || sub === "feature-set") {
      // Workflow protocol headers pass through generically as Upstash-Workflow-* (and Upstash-Feature-Set) on the
      // callback call.
      addSendable(out.headers, "upstash-" + sub, value, header);
    } else {
      throw badRequest(
        `${header}: unknown callback setting; use ${display}Retries, -Retry-Delay, -Timeout, -Delay, -Method or -Forward-<Header>`,
      );
    }
  }
  return any ? out : null;
}

/**
 * Adds a header the message will carry to its destination, refusing (400, naming `from`, where it was given) one that
 * HTTP cannot carry. Headers of a request always can; those of a JSON body (`POST /v2/batch`) may not, and would
 * otherwise fail every attempt.
 */
function addSendable(map: HeaderMap, name: string, value: string, from: string): void {
  const why = invalidHeader(name, value);
  if (why) throw badRequest(`${from}: ${why}`);
  addHeader(map, name, value);
}

function canonicalSuffix(sub: string): string {
  return sub.replace(/(^|-)([a-z])/g, (_, d: string, c: string) => d + c.toUpperCase());
}

/**
 * Reads every publish configuration value, validating each; the first problem is thrown as a 400
 * naming the header. `now` anchors delays.
 */
export function parseSpec(cfg: ConfigSource, s: Settings, now: number): MessageSpec {
  for (const name of cfg.names()) {
    if (name.startsWith("upstash-") && !KNOWN.has(name) && !name.startsWith(FORWARD) &&
        !name.startsWith(CALLBACK) && !name.startsWith(FAILURE_CALLBACK) && !name.startsWith("upstash-telemetry-") &&
        !name.startsWith(WORKFLOW) && name !== "upstash-feature-set") {
      throw badRequest(`unknown configuration header "${name}"`);
    }
  }
  const method = parseMethod(cfg.get("upstash-method"), "Upstash-Method");

  const headers: HeaderMap = {};
  const contentType = cfg.get("content-type");
  if (cfg.get("upstash-header-forward")?.toLowerCase() === "true") {
    for (const [name, value] of cfg.requestHeaders()) {
      if (isForwardable(name)) addSendable(headers, name, value, name);
    }
  }
  if (contentType !== undefined && headers["Content-Type"] === undefined) addSendable(headers, "content-type", contentType, "Content-Type");
  for (const name of cfg.names()) {
    if (name.startsWith(FORWARD) && name.length > FORWARD.length) {
      addSendable(headers, name.slice(FORWARD.length), cfg.get(name) ?? "", `Upstash-Forward-${name.slice(FORWARD.length)}`);
    } else if (name.startsWith(WORKFLOW) || name === "upstash-feature-set") {
      addSendable(headers, name, cfg.get(name) ?? "", name);
    }
  }

  const retriesRaw = cfg.get("upstash-retries");
  const maxRetries = retriesRaw === undefined ? Math.min(s.defaultRetries, s.maxRetries) : parseRetries(retriesRaw, "Upstash-Retries", s);
  const retryDelayExpr = cfg.get("upstash-retry-delay") ?? null;
  if (retryDelayExpr !== null) compileRetryDelay(retryDelayExpr, "Upstash-Retry-Delay");
  const timeoutRaw = cfg.get("upstash-timeout");
  const timeoutMs = timeoutRaw === undefined ? null : parseTimeout(timeoutRaw, "Upstash-Timeout", s);

  let notBefore = 0;
  const nb = cfg.get("upstash-not-before");
  const delay = cfg.get("upstash-delay");
  if (nb !== undefined) notBefore = parseNotBefore(nb, now, s);
  else if (delay !== undefined) {
    const ms = parseDelay(delay, "Upstash-Delay", s);
    notBefore = ms > 0 ? now + ms : 0;
  }

  const callbackRaw = cfg.get("upstash-callback");
  const failureRaw = cfg.get("upstash-failure-callback");
  const callback = callbackRaw === undefined ? null : checkUrl(callbackRaw.trim(), s.allowPrivateDestinations, "Upstash-Callback");
  const failureCallback =
    failureRaw === undefined ? null : checkUrl(failureRaw.trim(), s.allowPrivateDestinations, "Upstash-Failure-Callback");

  return {
    method,
    headers,
    maxRetries,
    retryDelayExpr,
    timeoutMs,
    notBefore,
    callback,
    failureCallback,
    callbackConfig: parseCallbackConfig(cfg, CALLBACK, "Upstash-Callback-", s),
    failureCallbackConfig: parseCallbackConfig(cfg, FAILURE_CALLBACK, "Upstash-Failure-Callback-", s),
    labels: parseLabels(cfg.get("upstash-label")),
    flowControl: parseFlowControl(cfg.get("upstash-flow-control-key"), cfg.get("upstash-flow-control-value")),
    redact: parseRedact(cfg.get("upstash-redact-fields")),
    deduplicationId: parseDedupId(cfg.get("upstash-deduplication-id")),
    contentBasedDeduplication: parseBool(cfg.get("upstash-content-based-deduplication"), "Upstash-Content-Based-Deduplication"),
  };
}
