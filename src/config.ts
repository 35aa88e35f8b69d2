/** Every limit and switch of a deployment, read once from the environment into named settings. */
import { parseDuration } from "./core/duration";
import type { Env } from "./env";

/** A limit that can be switched off: unset, "" or "off" means none. */
function optionalInt(v: string | undefined, name: string): number | null {
  if (v === undefined || v.trim() === "" || v.trim().toLowerCase() === "off") return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number of at least 0, or "off"; got "${v}"`);
  return n;
}

export interface Settings {
  devMode: boolean;
  /**
   * The consumer acknowledges a pack once its ids are claimed and runs their attempts in the background. On by
   * default in dev mode, where the local queue broker hands the consumer one batch at a time (a slow attempt would
   * hold up every other delivery); off on Cloudflare, which runs up to `max_concurrency` consumer invocations.
   */
  detachedAttempts: boolean;
  /**
   * How long one queue consumer invocation may work (Cloudflare allows 15 minutes of wall-clock time). An attempt
   * whose timeout does not fit what is left goes to a Runner object instead (a long attempt).
   */
  consumerBudgetMs: number;
  /**
   * Whether GLOBAL_PARALLELISM bounds each tenant's attempts under way (ENFORCE_GLOBAL_PARALLELISM; by default on,
   * and off in dev mode).
   */
  enforceGlobalParallelism: boolean;
  /** Messages a tenant may publish per UTC day (DAILY_MESSAGE_QUOTA), or null for no quota. */
  dailyMessageQuota: number | null;
  /** Management calls a tenant may make per second (BURST_RPS), or null for no limit. */
  burstRps: number | null;
  /** Publish calls one isolate takes at once; past it they answer 503 with Retry-After (MAX_INFLIGHT_PUBLISHES). */
  maxInflightPublishes: number;
  /** Publishes are refused while the deliveries queue lags more than this (MAX_QUEUE_LAG; null: never). */
  maxQueueLagMs: number | null;
  allowPrivateDestinations: boolean;
  maxMessageSize: number;
  /** Bodies larger than this many bytes are stored in R2, not in their D1 row. */
  inlineBodyMax: number;
  maxDelayMs: number;
  maxTimeoutMs: number;
  defaultRetries: number;
  maxRetries: number;
  logRetentionMs: number;
  dlqRetentionMs: number;
  jwtLifetimeS: number;
  regionLabel: string;
  schedulerShards: number;
  dedupWindowMs: number;
  maxQueues: number;
  maxSchedules: number;
  maxParallelism: number;
  maxUrlGroups: number;
  maxEndpointsPerGroup: number;
  globalParallelism: number;
  /** A message whose attempt started this long ago without an outcome is re-driven by the sweeper. */
  leaseGraceMs: number;
  /** A due message not picked up by the queue within this time is re-driven by the sweeper. */
  redriveAfterMs: number;
  /**
   * ...and re-driven again only after this long: under a backlog, due messages are merely waiting in the queue,
   * and re-sending them every sweep would only grow the backlog with duplicates.
   */
  redriveAgainMs: number;
}

function int(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`setting ${name}="${value}" must be a non-negative integer`);
  return n;
}

function duration(value: string | undefined, fallback: string, name: string): number {
  return parseDuration(value && value !== "" ? value : fallback, name);
}

function flag(value: string | undefined): boolean {
  return value === "true" || value === "1";
}

const cache = new WeakMap<object, Settings>();

/** Settings for this environment (memoised per env object; values never change at run time). */
export function settings(env: Env): Settings {
  const hit = cache.get(env);
  if (hit) return hit;
  const devMode = flag(env.DEV_MODE);
  const s: Settings = {
    devMode,
    detachedAttempts: env.DETACHED_ATTEMPTS === undefined || env.DETACHED_ATTEMPTS === "" ? devMode : flag(env.DETACHED_ATTEMPTS),
    consumerBudgetMs: duration(env.CONSUMER_BUDGET, "14m30s", "CONSUMER_BUDGET"),
    enforceGlobalParallelism:
      env.ENFORCE_GLOBAL_PARALLELISM === undefined || env.ENFORCE_GLOBAL_PARALLELISM === "" ? !devMode : flag(env.ENFORCE_GLOBAL_PARALLELISM),
    dailyMessageQuota: optionalInt(env.DAILY_MESSAGE_QUOTA, "DAILY_MESSAGE_QUOTA"),
    burstRps: optionalInt(env.BURST_RPS, "BURST_RPS"),
    maxInflightPublishes: Math.max(1, int(env.MAX_INFLIGHT_PUBLISHES, 256, "MAX_INFLIGHT_PUBLISHES")),
    maxQueueLagMs: !env.MAX_QUEUE_LAG || env.MAX_QUEUE_LAG === "off" ? null : duration(env.MAX_QUEUE_LAG, "1s", "MAX_QUEUE_LAG"),
    allowPrivateDestinations: devMode || flag(env.ALLOW_PRIVATE_DESTINATIONS),
    maxMessageSize: int(env.MAX_MESSAGE_SIZE, 10_485_760, "MAX_MESSAGE_SIZE"),
    // Keep it far below D1's 2 MB row limit: a row can hold a body and headers, and a callback payload is about
    // 4/3 of the response and source bodies together. A value past that makes outcome writes fail; such a message
    // is then ended as failed (consumer.ts, recordUnwritable), never retried in a loop.
    inlineBodyMax: int(env.INLINE_BODY_MAX, 16_384, "INLINE_BODY_MAX"),
    maxDelayMs: duration(env.MAX_DELAY, "365d", "MAX_DELAY"),
    maxTimeoutMs: duration(env.MAX_TIMEOUT, "14m", "MAX_TIMEOUT"),
    defaultRetries: int(env.DEFAULT_RETRIES, 3, "DEFAULT_RETRIES"),
    maxRetries: int(env.MAX_RETRIES, 20, "MAX_RETRIES"),
    logRetentionMs: duration(env.LOG_RETENTION, "14d", "LOG_RETENTION"),
    dlqRetentionMs: duration(env.DLQ_RETENTION, "30d", "DLQ_RETENTION"),
    jwtLifetimeS: Math.floor(duration(env.JWT_LIFETIME, "300s", "JWT_LIFETIME") / 1000),
    regionLabel: env.REGION_LABEL ?? "",
    schedulerShards: Math.max(1, int(env.SCHEDULER_SHARDS, 8, "SCHEDULER_SHARDS")),
    dedupWindowMs: duration(env.DEDUP_WINDOW, "10m", "DEDUP_WINDOW"),
    maxQueues: int(env.MAX_QUEUES, 1000, "MAX_QUEUES"),
    maxSchedules: int(env.MAX_SCHEDULES, 1000, "MAX_SCHEDULES"),
    maxParallelism: int(env.MAX_PARALLELISM, 1000, "MAX_PARALLELISM"),
    maxUrlGroups: int(env.MAX_URL_GROUPS, 1000, "MAX_URL_GROUPS"),
    maxEndpointsPerGroup: int(env.MAX_ENDPOINTS_PER_GROUP, 1000, "MAX_ENDPOINTS_PER_GROUP"),
    globalParallelism: int(env.GLOBAL_PARALLELISM, 1000, "GLOBAL_PARALLELISM"),
    leaseGraceMs: 30_000,
    redriveAfterMs: 15_000,
    redriveAgainMs: 300_000,
  };
  cache.set(env, s);
  return s;
}
