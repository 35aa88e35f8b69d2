/** The bindings and variables the worker runs with (see wrangler.toml). */
import type { Meter } from "./meter";
import type { Gate } from "./objects/gate";
import type { Limiter } from "./objects/limiter";
import type { Runner } from "./objects/runner";
import type { ScheduleTimer } from "./objects/schedule-timer";
import type { Scheduler } from "./objects/scheduler";

export interface Env {
  /** The tenant's shard inside a tenant's work (see src/db/shards.ts); the primary elsewhere. */
  DB: D1Database;
  /** Set on a shard's env: the primary database (tenants, tokens, the shard map) and the shard number. */
  PRIMARY_DB?: D1Database;
  SHARD?: number;
  DELIVERIES: Queue<DeliveryTask>;
  SCHEDULER: DurableObjectNamespace<Scheduler>;
  SCHEDULE_TIMER: DurableObjectNamespace<ScheduleTimer>;
  GATE: DurableObjectNamespace<Gate>;
  /** Burst limits of management calls, one object per tenant (src/objects/limiter.ts). */
  LIMITER: DurableObjectNamespace<Limiter>;
  /** Where detached attempts run in dev mode (src/objects/runner.ts). */
  RUNNER: DurableObjectNamespace<Runner>;
  METER_STORE: DurableObjectNamespace<Meter>;
  /** Bodies above INLINE_BODY_MAX bytes (src/db/blobs.ts). */
  BODIES: R2Bucket;
  INLINE_BODY_MAX?: string;
  DEDUP_WINDOW?: string;
  MAX_QUEUES?: string;
  MAX_SCHEDULES?: string;
  MAX_PARALLELISM?: string;
  MAX_URL_GROUPS?: string;
  MAX_ENDPOINTS_PER_GROUP?: string;
  GLOBAL_PARALLELISM?: string;
  DEV_MODE?: string;
  /** "true" / "false": see Settings.detachedAttempts (default: as DEV_MODE). */
  DETACHED_ATTEMPTS?: string;
  /** How long one consumer invocation may work (default 14m); longer attempts go to Runner objects. */
  CONSUMER_BUDGET?: string;
  /** "true" / "false": whether GLOBAL_PARALLELISM is enforced (default: on, off in dev mode). */
  ENFORCE_GLOBAL_PARALLELISM?: string;
  /** Messages per tenant per UTC day; "off" (the default) for none. */
  DAILY_MESSAGE_QUOTA?: string;
  /** Management calls per tenant per second; "off" for none. */
  BURST_RPS?: string;
  MAX_INFLIGHT_PUBLISHES?: string;
  MAX_QUEUE_LAG?: string;
  ALLOW_PRIVATE_DESTINATIONS?: string;
  /** The caller IP of a request that carries none (set by the local launchers when serving on a loopback address). */
  LOCAL_CALLER_IP?: string;
  /** `npm start` only: the attempt relay, a Node process that makes outgoing calls (scripts/relay.mjs, src/delivery/relay.ts). */
  RELAY?: Fetcher;
  /** The secret the relay checks on every request; set with RELAY by the launcher. */
  RELAY_SECRET?: string;
  /** `npm start` only: the D1 host, a workerd process that holds the D1 databases (src/db/remote.ts). */
  D1_HOST?: Fetcher;
  /** The secret the D1 host checks on every request; set with D1_HOST by the launcher (and in the host itself). */
  D1_HOST_SECRET?: string;
  /** The D1 binding names the D1 host serves, comma-separated (DB, DB_SHARD_1, …). */
  D1_HOST_NAMES?: string;
  MAX_MESSAGE_SIZE?: string;
  MAX_DELAY?: string;
  MAX_TIMEOUT?: string;
  DEFAULT_RETRIES?: string;
  MAX_RETRIES?: string;
  LOG_RETENTION?: string;
  DLQ_RETENTION?: string;
  JWT_LIFETIME?: string;
  REGION_LABEL?: string;
  SCHEDULER_SHARDS?: string;
  /** "true" counts D1, queue and Durable Object operations (GET /admin/metrics), for the cost benchmark. */
  METER?: string;
  /** Enables the /admin API when set (a secret: `wrangler secret put ADMIN_SECRET`). */
  ADMIN_SECRET?: string;
}

/**
 * What travels on the deliveries queue: ids only, in packs (`src/delivery/packs.ts`); the messages live in D1.
 * `id` is the older one-id form, still read so that tasks in flight during an upgrade are delivered.
 */
export interface DeliveryTask {
  ids?: string[];
  id?: string;
  /** How many deliveries of earlier packs these ids have been through (ids handed back after failing in the consumer). */
  tries?: number;
}
