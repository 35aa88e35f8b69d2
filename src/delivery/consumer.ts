/** The deliveries queue consumer: claims each message, makes the attempt, records the outcome. */
import { type Settings, settings } from "../config";
import { nextRetryDelayMs } from "../core/backoff";
import { callbackMessage } from "../core/callback";
import { compileRetryDelay } from "../core/expr";
import { mapToHeaders } from "../core/headers";
import { newDlqId } from "../core/ids";
import type { AttemptResult, StoredMessage } from "../core/types";
import { insertDlq } from "../db/dlq";
import { capHeaders, type EntryInput, LOG_ROW_MAX } from "../db/logs";
import { loadMessageBodies, spillMessages, spillResponse } from "../db/blobs";
import type { LeaseGuard } from "../db/lease";
import {
  cancelRequested,
  claimStatements,
  tenantsOf,
  insertMessage,
  leaseStatement,
  loadForDelivery,
  queuedSourceState,
  releaseLeases,
  rowToMessage,
  type Transition,
  transition,
  transitionsDelivered,
  type Delivered,
} from "../db/messages";
import { shardEnv, shardOfMessageId } from "../db/shards";
import type { DeliveryTask, Env } from "../env";
import type { ScheduleItem } from "../objects/scheduler";
import { gateName, gateStub } from "../objects/gate";
import { attempt, type Sender } from "./attempt";
import { RELAY_BATCH, relayFor, usesRelay } from "./relay";
import { dispatch } from "./dispatch";
import { RUNNERS, runnerStub } from "../objects/runner";
import { limiterStub } from "../objects/limiter";
import { COMMIT_GAP_MS, GroupCommit } from "./group-commit";
import { idsOf, PACK_TRIES_MAX, sendIds } from "./packs";
import { workflowDelivery } from "../workflow/deliver";
import { endRunStatement, getRun, workflowFacts } from "../db/workflow-runs";
import { afterRunEnded } from "../workflow/lifecycle";

/** A task that arrives this much before its message is due is left to the scheduler. */
const EARLY_SLACK_MS = 1000;
/** A callback is delivered inline only while at least this much of the invocation's budget is left. */
const INLINE_MIN_BUDGET_MS = 1_000;
/**
 * An attempt whose claim wrote nothing takes a lease of its own once it has run this long (see `leaseWhenLong`).
 * Most destinations answer well within it, so their messages never write a claim.
 */
export const LEASE_AFTER_MS = 1_000;

/** What one consumer invocation works with. */
interface Run {
  env: Env;
  s: Settings;
  /** Work that could run past this moment goes back to the queue instead of running inline. */
  deadline: number;
  /** Claimed attempts go to Runner objects instead of running here (dev mode, see Settings.detachedAttempts). */
  background: boolean;
  /** Where this run's outgoing calls are made when not from this isolate (`npm start`'s relay). */
  via?: Sender;
  /** The attempts of this run that may need a lease of their own (made with the first of them). */
  long?: LongAttempts;
}

/**
 * A message taken for an attempt. `message.leaseUntil` is the lease its attempt holds: one its claim or the attempt
 * wrote, or, while `activeAt` is set, the one the claim found (none, or a run-out one) because the claim wrote
 * nothing. `activeAt` is then when the attempt was taken: its ACTIVE entry is written with the outcome, at that time.
 */
export interface Claimed {
  message: StoredMessage;
  signingKey: string;
  activeAt: number | null;
}

/** What every write of an attempt's outcome is conditioned on: the message's lease and retries as the attempt holds them. */
const guardOf = (m: StoredMessage): LeaseGuard => ({ id: m.id, leaseUntil: m.leaseUntil, retried: m.retried });

/** The lease a claim or an attempt wrote and so may give back (none while the claim wrote nothing). */
const ownLease = (c: Claimed) => (c.activeAt === null && c.message.leaseUntil !== null ? [{ id: c.message.id, leaseUntil: c.message.leaseUntil }] : []);

/**
 * What a claim took: the messages to attempt, the ids leased but unusable (each with why), and the ids deferred
 * because their tenant has GLOBAL_PARALLELISM attempts under way (sent back to the queue for a second later).
 */
interface ClaimResult {
  claimed: Map<string, Claimed>;
  broken: Map<string, unknown>;
  deferred: Set<string>;
}

/**
 * Attempt slots under GLOBAL_PARALLELISM, from each tenant's Limiter object: the ids that may be claimed now, by
 * tenant. Ids whose tenant is at its limit are left out; ids that do not exist pass (the claim skips them).
 */
async function acquireSlots(env: Env, s: Settings, ids: string[], now: number): Promise<{ allowed: string[]; byTenant: Map<string, string[]> }> {
  const owners = await tenantsOf(env.DB, ids);
  const wanted = new Map<string, string[]>();
  for (const id of ids) {
    const t = owners.get(id);
    if (t) (wanted.get(t) ?? wanted.set(t, []).get(t)!).push(id);
  }
  const until = now + s.maxTimeoutMs + s.leaseGraceMs;
  const byTenant = new Map<string, string[]>();
  await Promise.all(
    [...wanted].map(async ([t, list]) => byTenant.set(t, await limiterStub(env, t).acquire(s.globalParallelism, list, until))),
  );
  const granted = new Set([...byTenant.values()].flat());
  return { allowed: ids.filter((id) => !owners.has(id) || granted.has(id)), byTenant };
}

/** Gives back attempt slots (GLOBAL_PARALLELISM) of a tenant; a lost release lapses with the slot's lease. */
async function releaseSlots(env: Env, s: Settings, tenantId: string, ids: string[]): Promise<void> {
  if (!s.enforceGlobalParallelism || ids.length === 0) return;
  await limiterStub(env, tenantId)
    .release(ids)
    .catch((err) => console.error("releasing attempt slots failed; they lapse with their leases", err));
}

/**
 * Claims, in one D1 round trip, every message among `ids` that is due, idle and unfinished, with its tenant's current
 * signing key (see `claimStatements`): a message the sweeper re-drove is leased, with its ACTIVE entry; every other
 * one is only read, and its attempt leases it if it runs long. The rest are left as they were (see
 * `settleUnclaimed`). A row that cannot be used (its tenant has no signing key) is reported in `broken`, with its
 * lease given back if it got one, without holding up the others. Under GLOBAL_PARALLELISM, ids of a tenant at its
 * limit are not claimed at all but `deferred`.
 */
async function claim(env: Env, s: Settings, all: string[], now: number): Promise<ClaimResult> {
  let ids = all;
  let slots: Map<string, string[]> | null = null;
  if (s.enforceGlobalParallelism) {
    const got = await acquireSlots(env, s, all, now);
    ids = got.allowed;
    slots = got.byTenant;
  }
  // Without GLOBAL_PARALLELISM every id is claimed. With it, a Set keeps this linear: a batch may hold 2,500 ids.
  const allowed = ids === all ? null : new Set(ids);
  const deferred = new Set(allowed ? all.filter((id) => !allowed.has(id)) : []);
  const stmts = claimStatements(env.DB, ids, now, { maxTimeoutMs: s.maxTimeoutMs, graceMs: s.leaseGraceMs, earlyMs: EARLY_SLACK_MS });
  const [written, free] = await env.DB.batch<Record<string, unknown>>([stmts.written, stmts.free]);
  const claimed = new Map<string, Claimed>();
  const broken = new Map<string, unknown>();
  const unusable: Claimed[] = [];
  const take = (row: Record<string, unknown>, activeAt: number | null) => {
    const c: Claimed = { message: rowToMessage(row), signingKey: String(row.signing_key), activeAt };
    if (row.signing_key == null) {
      broken.set(c.message.id, new Error(`tenant ${String(row.tenant_id)} has no signing key`));
      unusable.push(c);
    } else claimed.set(c.message.id, c);
  };
  for (const row of written.results) take(row, null);
  for (const row of free.results) take(row, now);
  if (unusable.length) await releaseLeases(env.DB, unusable.flatMap(ownLease));
  // Slots taken for ids that were not claimed after all (not due, leased elsewhere, finished) or are unusable.
  if (slots) {
    for (const [t, list] of slots) await releaseSlots(env, s, t, list.filter((id) => !claimed.has(id)));
  }
  if (deferred.size) await sendIds(env, [...deferred], 1);
  return { claimed, broken, deferred };
}

/**
 * Each queue message carries a pack of ids (`src/delivery/packs.ts`). A pack whose ids all ran is acked; the ids
 * that failed inside the consumer go back to the queue as a pack of their own, or, if even that send fails, the
 * whole pack is retried (the consumer skips the ids that finished meanwhile). `budgetMs` is how long this
 * invocation may run (tests shorten it).
 */
export async function consumeBatch(batch: MessageBatch<DeliveryTask>, env: Env, budgetMs = settings(env).consumerBudgetMs): Promise<void> {
  // Each message id names its D1 shard: the ids of each shard are claimed and recorded there.
  const byShard = new Map<number, string[]>();
  const packOf = new Map<Message<DeliveryTask>, string[]>();
  for (const m of batch.messages) {
    const ids = idsOf(m.body);
    packOf.set(m, ids);
    for (const id of ids) {
      const n = shardOfMessageId(id);
      (byShard.get(n) ?? byShard.set(n, []).get(n)!).push(id);
    }
  }
  const failed = new Set<string>();
  await Promise.all([...byShard].map(([n, ids]) => consumeShard(ids, shardEnv(env, n), budgetMs, failed)));
  await Promise.all(
    [...packOf].map(async ([msg, ids]) => {
      const again = ids.filter((id) => failed.has(id));
      if (again.length === 0) return msg.ack();
      const tries = (msg.body.tries ?? 0) + msg.attempts;
      if (again.length === ids.length || tries >= PACK_TRIES_MAX) return msg.retry({ delaySeconds: 1 });
      try {
        await sendIds(env, again, 1, tries);
        msg.ack();
      } catch (err) {
        console.error("handing failed ids back to the queue failed; retrying their whole pack", err);
        msg.retry({ delaySeconds: 1 });
      }
    }),
  );
}

/** Claims and attempts the ids of one shard; an id whose work threw inside the consumer lands in `failed`. */
async function consumeShard(list: readonly string[], env: Env, budgetMs: number, failed: Set<string>): Promise<void> {
  const now = Date.now();
  const s = settings(env);
  const ids = [...new Set(list)]; // an id that came twice in one batch runs once
  // Attempts made here (not detached) go through the relay too when there is one and the batch is large enough.
  const run: Run = { env, s, deadline: now + budgetMs, background: s.detachedAttempts, via: s.detachedAttempts ? undefined : relayFor(env, ids.length) };
  let taken: ClaimResult = { claimed: new Map(), broken: new Map(), deferred: new Set() };
  try {
    taken = await claim(env, run.s, ids, now);
  } catch (err) {
    // Nothing is lost: each id below takes the one-by-one path, and a lease taken here expires.
    console.error("claiming a batch of deliveries failed; trying them one by one", err);
  }
  // Attempts that go to Runner objects: all of them in dev mode (detached), else those whose timeout could outlive
  // this invocation (a long attempt: Upstash-Timeout up to MAX_TIMEOUT, past the consumer's 15 minutes).
  const toRunners = [...taken.claimed.values()].filter((c) => run.background || outlives(run, c.message, now));
  const handedOver = new Set<string>();
  if (toRunners.length) {
    try {
      await detachAll(run, toRunners);
      for (const c of toRunners) handedOver.add(c.message.id);
    } catch (err) {
      // The Runners could not take them: the attempts run here instead (a long one may then be cut with the
      // invocation; its lease runs out and the sweeper re-sends it).
      console.error("handing claimed attempts to the runners failed; running them in the consumer", err);
    }
  }
  await Promise.all(
    ids.filter((id) => !handedOver.has(id) && !taken.deferred.has(id)).map(async (id) => {
      const mine = taken.claimed.get(id);
      try {
        if (taken.broken.has(id)) throw taken.broken.get(id);
        if (mine) await runAttempt(run, mine);
        else await deliverOne(run, id);
      } catch (err) {
        console.error(`delivery of ${id} failed inside the consumer; the queue will retry it`, err);
        failed.add(id);
        // The next try need not wait for the lease to run out (a no-op if the outcome was written).
        if (mine) await releaseLeases(env.DB, ownLease(mine)).catch(() => undefined);
      }
    }),
  );
}

/** Whether an attempt of `m` may run past this invocation's budget (its timeout does not fit what is left). */
function outlives(run: Run, m: StoredMessage, now: number): boolean {
  return now + (m.timeoutMs ?? run.s.maxTimeoutMs) > run.deadline;
}

/**
 * Detached attempts (dev mode): the claimed messages go, as read, to Runner objects (`src/objects/runner.ts`), which
 * make the attempts on their own time, and the pack is acknowledged at once. The local queue broker dispatches its
 * next batch only once the previous one is done, so a slow destination would otherwise hold up every delivery. If a
 * Runner is lost, its messages stay unfinished and idle (or their leases run out), and the sweeper re-sends them.
 */
async function detachAll(run: Run, claimed: Claimed[]): Promise<void> {
  const shard = shardOfMessageId(claimed[0].message.id);
  // Through the relay, a Runner holds one connection (to the relay) per RELAY_BATCH attempts, not one per attempt.
  const perCall = usesRelay(run.env, claimed.length) ? RELAY_BATCH : ATTEMPTS_PER_RUNNER_CALL;
  await Promise.all(runnerChunks(claimed.length, nextRunner++, perCall).map(([n, from, to]) => runnerStub(run.env, n).run(shard, claimed.slice(from, to))));
}

/** Where the next detached batch starts among the Runners (they take turns). */
let nextRunner = 0;

/**
 * How `count` detached attempts are split over Runners: as few calls as keep each at most `perCall` attempts (by
 * default ATTEMPTS_PER_RUNNER_CALL: an invocation holds at most 6 outgoing connections on a deployment), and at most
 * RUNNERS calls, starting at Runner `start`. Returns [runner, from, to) slices. One call per small batch, where
 * splitting by id made a call for almost every attempt.
 */
export function runnerChunks(count: number, start: number, perCall = ATTEMPTS_PER_RUNNER_CALL): [number, number, number][] {
  const calls = Math.min(RUNNERS, Math.max(1, Math.ceil(count / perCall)));
  const size = Math.ceil(count / calls);
  const out: [number, number, number][] = [];
  for (let i = 0, from = 0; from < count; i++, from += size) out.push([(start + i) % RUNNERS, from, Math.min(count, from + size)]);
  return out;
}

/** Outgoing connections one Worker or Durable Object invocation may hold at once on a deployment (platform.md). */
const ATTEMPTS_PER_RUNNER_CALL = 6;

/**
 * A Runner's work: the attempts of messages a consumer claimed (their bodies are read from R2 here). Every outcome
 * is guarded by the lease and retries its attempt began with, so a message another attempt took meanwhile records
 * nothing from this one. An attempt that throws gives its lease back and goes back to the queue.
 */
export async function runDetached(env: Env, claimed: Claimed[]): Promise<void> {
  const s = settings(env);
  // A Runner is not a queue consumer: its attempts have their full timeouts, and inline callbacks get the same room.
  const run: Run = { env, s, deadline: Date.now() + Math.max(s.consumerBudgetMs, s.maxTimeoutMs), background: false, via: relayFor(env, claimed.length) };
  await Promise.all(
    claimed.map(async (c) => {
      const id = c.message.id;
      try {
        await runAttempt(run, c);
      } catch (err) {
        console.error(`the detached attempt on ${id} failed; handing it back to the queue`, err);
        try {
          await releaseLeases(env.DB, ownLease(c));
          await sendIds(env, [id], 1);
        } catch (again) {
          console.error(`handing ${id} back failed; the sweeper will re-send it`, again);
        }
      }
    }),
  );
}

/** Claims one message and makes its attempt, or settles why it cannot be claimed. */
async function deliverOne(run: Run, id: string): Promise<void> {
  const taken = await claim(run.env, run.s, [id], Date.now());
  if (taken.broken.has(id)) throw taken.broken.get(id);
  if (taken.deferred.has(id)) return; // back in the queue for a second later
  const mine = taken.claimed.get(id);
  if (mine) await runAttempt(run, mine);
  else await settleUnclaimed(run.env, id);
}

/** A message the claim left alone: finish a cancel-requested one, release a finished one's gates, or leave it. */
async function settleUnclaimed(env: Env, id: string): Promise<void> {
  const loaded = await loadForDelivery(env.DB, id);
  if (!loaded) return;
  const m = loaded.message;
  const now = Date.now();
  if (m.finishedAt !== null) {
    // A duplicate task; for a gated message the earlier release may have been lost with a crashed
    // consumer, and releasing again is harmless.
    if (m.queueName || m.flowControl || m.extra.queuedParent) await afterTerminal(env, m);
    return;
  }
  if (m.held) return; // its queue or flow-control gate has not admitted it yet
  if (m.dueAt > now + EARLY_SLACK_MS) return; // the scheduler holds it until it is due
  if (m.leaseUntil !== null && m.leaseUntil > now) return; // an attempt is under way elsewhere
  if (m.cancelRequested) {
    // Not leased: the guard is the lease it has (none, or a run-out one), so a claim in between wins.
    await env.DB.batch(finishStatements(env.DB, m, guardOf(m), "CANCELED", now, {}));
    await afterTerminal(env, m);
  }
}

/**
 * Makes the attempt and records it. An inline attempt (a callback delivered by the invocation that produced
 * it) is cut at what is left of the invocation's budget; if that cut comes first, the message is handed back
 * to the queue unrecorded, to get an attempt with its full timeout there.
 */
async function runAttempt(run: Run, c: Claimed, inline = false): Promise<void> {
  const leasing = leaseWhenLong(run, c);
  try {
    // Bodies kept in R2 are needed for the attempt and for the source body of its callbacks.
    await loadMessageBodies(run.env, [c.message]);
    const sent = await workflowDelivery(run.env, c.message);
    // null: a wait's timeout that an event beat; it is done without a call.
    const result = sent === null ? skippedTimeout() : await attempt(sent, c.signingKey, run.s, inline ? run.deadline - Date.now() : undefined, run.via);
    await leasing.settle();
    if (result.outOfBudget) {
      await releaseLeases(run.env.DB, ownLease(c));
      await dispatch(run.env, [{ id: c.message.id, dueAt: c.message.dueAt }], Date.now(), run.s.schedulerShards);
      return;
    }
    await recordOutcome(run, c, result);
  } finally {
    await leasing.settle();
    // The attempt is over: its slot under GLOBAL_PARALLELISM is free again.
    await releaseSlots(run.env, run.s, c.message.tenantId, [c.message.id]);
  }
}

/**
 * For an attempt whose claim wrote nothing: once it has run LEASE_AFTER_MS, it writes its lease and ACTIVE entry
 * (`leaseStatement`), so a long attempt shows as under way, a cancel waits for it and the sweeper leaves it alone,
 * as if its claim had leased it. `settle` stops watching it and waits for a lease write under way, so that the
 * outcome is guarded by the lease the row holds. A lease write that did not apply (another attempt or a cancel took
 * the message) changes nothing here: the outcome's guard then fails the same way.
 */
function leaseWhenLong(run: Run, c: Claimed): { settle: () => Promise<void> } {
  if (c.activeAt === null) return { settle: async () => undefined };
  run.long ??= new LongAttempts(run);
  return run.long.watch(c);
}

/**
 * The attempts of one run that have not leased their messages, under one timer. The attempts of a batch start
 * together and nearly all end within milliseconds, so a timer each (set, then cleared) was most of what they cost
 * in timers; one timer per run does the same: when it fires, every attempt that has run LEASE_AFTER_MS (or will
 * within LONG_SLACK_MS) writes its lease, and the timer is set again for the rest.
 */
class LongAttempts {
  private readonly watched = new Map<Claimed, { dueAt: number; writing: Promise<void> | null }>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(private readonly run: Run) {}

  watch(c: Claimed): { settle: () => Promise<void> } {
    const entry = { dueAt: Date.now() + LEASE_AFTER_MS, writing: null as Promise<void> | null };
    this.watched.set(c, entry);
    if (entry.dueAt < this.timerAt) this.arm(entry.dueAt);
    return {
      settle: async () => {
        this.watched.delete(c);
        if (!this.watched.size && this.timer !== null) {
          clearTimeout(this.timer);
          this.timer = null;
          this.timerAt = Number.POSITIVE_INFINITY;
        }
        if (entry.writing) await entry.writing;
      },
    };
  }

  private arm(at: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - Date.now()));
  }

  private fire(): void {
    this.timer = null;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [c, entry] of this.watched) {
      if (entry.writing) continue;
      if (entry.dueAt <= now + LONG_SLACK_MS) entry.writing = this.lease(c);
      else next = Math.min(next, entry.dueAt);
    }
    if (next < Number.POSITIVE_INFINITY) this.arm(next);
  }

  private lease(c: Claimed): Promise<void> {
    const m = c.message;
    const { env, s } = this.run;
    return leaseStatement(env.DB, guardOf(m), c.activeAt!, { maxTimeoutMs: s.maxTimeoutMs, graceMs: s.leaseGraceMs })
      .first<{ lease_until: number }>()
      .then((row) => {
        if (!row) return;
        m.leaseUntil = Number(row.lease_until);
        c.activeAt = null;
      })
      .catch((err) => console.error(`writing the lease of the long attempt on ${m.id} failed; its outcome is written without it`, err));
  }
}

/** Attempts due for their lease this soon after the timer fires take it with those that are due. */
const LONG_SLACK_MS = 50;

type Extra = { error?: string | null; responseStatus?: number | null };

/** The outcome of a wait's timeout message whose wait an event ended first: delivered, with nothing sent. */
function skippedTimeout(): AttemptResult {
  const body = new TextEncoder().encode("not sent: the event came before the wait timed out");
  return { status: 200, headers: {}, body, bodyTruncated: false, error: null, nonRetryable: false };
}

/** Marks a message terminal with its log entry, under `guard` (the lease it must still hold). */
function finishStatements(
  db: D1Database,
  m: StoredMessage,
  guard: LeaseGuard,
  state: "DELIVERED" | "FAILED" | "CANCELED",
  now: number,
  e: Extra,
): D1PreparedStatement[] {
  return [transition(db, guard, { to: state }, [{ state, error: e.error, responseStatus: e.responseStatus }], now)];
}

/** The DLQ entry of a failed message, with the last attempt's response (`reason` goes in the FAILED log entry). */
function dlqStatement(db: D1Database, m: StoredMessage, guard: LeaseGuard, now: number, dlqId: string, result: AttemptResult, responseBodyRef: string | null) {
  return insertDlq(
    db,
    {
      dlqId,
      tenantId: m.tenantId,
      messageId: m.id,
      createdAt: now,
      responseStatus: result.status,
      responseHeaders: result.headers,
      responseBody: result.body,
      responseBodyRef,
      error: result.error,
    },
    guard,
  );
}

/**
 * Writes the outcome of an attempt (in a D1 batch shared with other outcomes finishing at the same moment),
 * then hands the follow-up work on: retries to the scheduler, callbacks delivered right here when they fit
 * in this invocation, else to the queue. Every write is guarded by the attempt's lease: if the lease was lost
 * meanwhile, the outcome writes nothing and nothing follows from it.
 */
async function recordOutcome(run: Run, c: Claimed, result: AttemptResult): Promise<void> {
  const { env, s } = run;
  const db = env.DB;
  const m = c.message;
  const now = Date.now();
  const guard = guardOf(m);
  // Guarded inserts first, then the transition that clears the lease (last).
  const stmts: D1PreparedStatement[] = [];
  let move: Transition;
  const next: ScheduleItem[] = [];
  const success = result.status >= 200 && result.status < 300;
  const followUps: StoredMessage[] = [];
  const inline: string[] = [];
  let terminal = success;

  const wantsCallback = m.kind === "message" && m.callback !== null;
  // A large response body goes to R2 once; the log entry and the DLQ entry refer to the same object. So does any
  // response body once the message's log is near LOG_ROW_MAX (many attempts), which keeps the row below D1's limits.
  const logFull = (m.logBytes ?? 0) + (result.body.byteLength * 4) / 3 > LOG_ROW_MAX;
  const responseBodyRef = await spillResponse(env, logFull ? 0 : s.inlineBodyMax, m, result.body);
  const responseHeaders = logFull ? capHeaders(result.headers, 1024) : result.headers;
  const response = { responseStatus: result.status, responseHeaders, responseBody: result.body, responseBodyRef };
  const entries: EntryInput[] = [];

  if (success) {
    if (wantsCallback) followUps.push(callbackMessage(m, "callback", result, now));
    entries.push({ state: "DELIVERED", ...response });
    move = { to: "DELIVERED" };
  } else {
    entries.push({ state: "ERROR", error: result.error, ...response });
    const cancelled = await cancelRequested(db, m.id);
    // Cancellation fires no callbacks (contract §5.1); every other failed attempt does.
    if (!cancelled && wantsCallback) followUps.push(callbackMessage(m, "callback", result, now));
    if (cancelled) {
      terminal = true;
      entries.push({ state: "CANCELED", error: result.error });
      move = { to: "CANCELED" };
    } else if (m.retried < m.maxRetries && !result.nonRetryable) {
      const delay = nextRetryDelayMs({
        retried: m.retried,
        expr: m.retryDelayExpr ? compileRetryDelay(m.retryDelayExpr) : null,
        response: result.status === 0 ? null : mapToHeaders(result.headers),
        now,
        maxDelayMs: s.maxDelayMs,
      });
      const dueAt = now + delay;
      entries.push({ state: "RETRY", nextDeliveryTime: dueAt });
      move = { to: "RETRY", dueAt };
      next.push({ id: m.id, dueAt });
    } else {
      terminal = true;
      const dlqId = newDlqId(now);
      const reason = !result.nonRetryable
        ? `retries exhausted after ${m.retried + 1} attempt(s): ${result.error}`
        : result.status === 489
          ? "the destination answered 489 with Upstash-NonRetryable-Error: true"
          : `not retried: ${result.error}`;
      entries.push({ state: "FAILED", error: reason, responseStatus: result.status });
      stmts.push(dlqStatement(db, m, guard, now, dlqId, result, responseBodyRef));
      // A workflow step that fails for good fails its run.
      const wf = workflowFacts(m.headers);
      if (wf && m.kind === "message" && wf.callType === "step") stmts.push(endRunStatement(db, m.tenantId, wf.runId, "RUN_FAILED", now, dlqId));
      move = { to: "FAILED" };
      if (m.kind === "message" && m.failureCallback) followUps.push(callbackMessage(m, "failure_callback", result, now, dlqId));
    }
  }
  await spillMessages(env, s.inlineBodyMax, followUps);
  for (const f of followUps) {
    // A queued message keeps its slot until its callbacks finish too (contract §5.7).
    if (m.queueName) f.extra = { ...f.extra, queuedParent: true };
    stmts.push(insertMessage(db, f, guard));
    if (f.dueAt <= now && run.deadline - now >= INLINE_MIN_BUDGET_MS) inline.push(f.id);
    else next.push({ id: f.id, dueAt: f.dueAt });
  }
  // Made only when the transition is not shared (see outcomesOf): most deliveries under load need no statement of
  // their own.
  const last = () => transition(db, guard, move, entries, now, c.activeAt);
  const delivered = move.to === "DELIVERED" && entries.length === 1 ? { guard, entry: entries[0], activeAt: c.activeAt, now } : null;
  // What the batch carries inline: the response body up to three times (log entry, DLQ entry, callback body) and
  // the source body, unless they went to R2.
  const inlineBytes = (b: Uint8Array) => (b.byteLength > s.inlineBodyMax ? 0 : b.byteLength);
  const bytes = 3 * inlineBytes(result.body) + 2 * inlineBytes(m.body) + 1024;
  const outcome: Outcome = { env, stmts, last, delivered, bytes, written: false };
  try {
    await outcomesOf(env.DB).join(outcome);
  } catch (shared) {
    // A shared batch fails for every member when one of them cannot be written: try this outcome alone before
    // calling it unwritable. A batch is a transaction, so the failed attempt left nothing behind.
    try {
      const alone = stmts.concat(last());
      outcome.written = transitioned(await db.batch(alone));
    } catch (alone) {
      console.error(`the outcome of ${m.id} could not be written; ending it as failed`, alone, shared);
      await recordUnwritable(run, c, result, alone);
      return;
    }
  }
  if (!outcome.written) {
    console.warn(`the attempt on ${m.id} lost its lease before its outcome was written; the outcome was dropped`);
    return;
  }
  // If this hand-off is lost (crash right here), the sweeper finds the due, unfinished rows and re-drives them.
  if (next.length) await dispatch(env, next, now, s.schedulerShards);
  if (terminal) await afterTerminal(env, m);
  if (move.to === "FAILED") await workflowStepFailed(env, m, now);
  // A callback due now is delivered in this invocation (no queue hop). If this invocation dies first,
  // the sweeper finds the unfinished row and re-drives it.
  await Promise.all(
    inline.map(async (id) => {
      let mine: Claimed | undefined;
      try {
        const taken = await claim(env, s, [id], Date.now());
        if (taken.broken.has(id)) throw taken.broken.get(id);
        if (taken.deferred.has(id)) return; // back in the queue for a second later
        mine = taken.claimed.get(id);
      } catch (err) {
        console.error(`claiming callback ${id} failed; handing it to the queue`, err);
      }
      if (mine) {
        try {
          return await runAttempt(run, mine, true);
        } catch (err) {
          console.error(`the inline attempt on callback ${id} failed; handing it to the queue`, err);
          await releaseLeases(env.DB, ownLease(mine));
        }
      }
      await dispatch(env, [{ id, dueAt: now }], Date.now(), s.schedulerShards);
    }),
  );
}

/** A workflow step that failed for good failed its run (in the outcome's commit): the rest of the run's end follows. */
async function workflowStepFailed(env: Env, m: StoredMessage, now: number): Promise<void> {
  const wf = workflowFacts(m.headers);
  if (!wf || m.kind !== "message" || wf.callType !== "step") return;
  try {
    const run = await getRun(env.DB, m.tenantId, wf.runId);
    if (run && run.state === "RUN_FAILED") await afterRunEnded(env, run, "RUN_FAILED", now, null);
  } catch (err) {
    console.error(`ending workflow run ${wf.runId} after its step ${m.id} failed`, err);
  }
}

/** Whether an outcome's statements applied: its last statement, the guarded transition, returned the id. */
function transitioned(results: D1Result[]): boolean {
  return (results[results.length - 1]?.results?.length ?? 0) > 0;
}

/**
 * Ends a message whose outcome cannot be written (a D1 limit, a constraint): an ERROR entry that names the cause,
 * FAILED, a DLQ entry and the failure callback, all without the response body and headers. It never loops back to
 * another attempt. If even this cannot be written, the error goes up and the queue retries the task.
 */
async function recordUnwritable(run: Run, c: Claimed, result: AttemptResult, cause: unknown): Promise<void> {
  const { env, s } = run;
  const db = env.DB;
  const m = c.message;
  const now = Date.now();
  const guard = guardOf(m);
  const error = `the outcome of the attempt could not be stored (${String(cause).slice(0, 300)}); the message was ended as failed`;
  const bare: AttemptResult = { ...result, headers: {}, body: new Uint8Array(0), bodyTruncated: false, error };
  const dlqId = newDlqId(now);
  const stmts = [dlqStatement(db, m, guard, now, dlqId, bare, null)];
  const followUps: ScheduleItem[] = [];
  if (m.kind === "message" && m.failureCallback) {
    const f = callbackMessage(m, "failure_callback", bare, now, dlqId);
    if (m.queueName) f.extra = { ...f.extra, queuedParent: true };
    await spillMessages(env, s.inlineBodyMax, [f]);
    stmts.push(insertMessage(db, f, guard));
    followUps.push({ id: f.id, dueAt: f.dueAt });
  }
  stmts.push(
    transition(
      db,
      guard,
      { to: "FAILED" },
      [
        { state: "ERROR", error, responseStatus: result.status },
        { state: "FAILED", error, responseStatus: result.status },
      ],
      now,
      c.activeAt,
    ),
  );
  if (!transitioned(await db.batch(stmts))) {
    console.warn(`the attempt on ${m.id} lost its lease before its failure was written; nothing was recorded`);
    return;
  }
  if (followUps.length) await dispatch(env, followUps, now, s.schedulerShards);
  await afterTerminal(env, m);
}

interface Outcome {
  env: Env;
  /** Its guarded writes, which go before its transition. */
  stmts: D1PreparedStatement[];
  /** Its transition: the last of its writes, since it clears the lease. */
  last: () => D1PreparedStatement;
  /** For a delivery: its transition as a row of a statement shared with others (`transitionsDelivered`). */
  delivered: Delivered | null;
  bytes: number;
  /** Set by the commit: whether the guarded transition applied (the attempt still held its lease). */
  written: boolean;
}

/**
 * Outcomes finishing at the same moment share one D1 batch: every statement is an UPDATE by id or an INSERT
 * with a fresh id, so none can fail on its own. Only the write is shared, so that an outcome waits for
 * nothing but earlier writes (the less time between an answer and its record, the fewer repeats after a crash).
 */
const outcomesByDb = new WeakMap<D1Database, GroupCommit<Outcome>>();

/** The group commit of one D1 database (shard): outcomes of different shards never share a batch. */
function outcomesOf(db: D1Database): GroupCommit<Outcome> {
  let g = outcomesByDb.get(db);
  if (!g) {
    g = new GroupCommit<Outcome>(
      async (items) => {
        const db = items[0].env.DB;
        // Deliveries share their transitions: one or two statements at the end of the batch, after every guarded
        // write. Each other outcome keeps its transition right after its own writes.
        const delivered = items.filter((o) => o.delivered !== null);
        const shared = new Set(delivered.length >= 2 ? delivered : []);
        const stmts: D1PreparedStatement[] = [];
        const lastAt = new Map<Outcome, number>();
        for (const o of items) {
          stmts.push(...o.stmts);
          if (shared.has(o)) continue;
          stmts.push(o.last());
          lastAt.set(o, stmts.length - 1);
        }
        const tailAt = stmts.length;
        if (shared.size) stmts.push(...transitionsDelivered(db, [...shared].map((o) => o.delivered!)));
        const results = await db.batch(stmts);
        const applied = new Set(results.slice(tailAt).flatMap((r) => (r.results ?? []).map((row) => (row as { id: string }).id)));
        for (const o of items) {
          o.written = shared.has(o) ? applied.has(o.delivered!.guard.id) : (results[lastAt.get(o)!]?.results?.length ?? 0) > 0;
        }
      },
      (o) => ({ units: 1, bytes: o.bytes }),
      // One commit at a time, spaced like the publishes' under load (COMMIT_GAP_MS): fuller groups, fewer D1 calls.
      { leaders: 1, units: 64, bytes: 1 << 20, stuckMs: 5_000, spacing: { gapMs: COMMIT_GAP_MS, loadUnits: 2 } },
    );
    outcomesByDb.set(db, g);
  }
  return g;
}

/**
 * Frees what a finished message held: its flow-control slot at once; its queue slot once its callback
 * messages have finished as well. A finished callback of a queued message may free its source's slot.
 */
export async function afterTerminal(env: Env, m: StoredMessage): Promise<void> {
  const work: Promise<void>[] = [];
  if (m.flowControl) work.push(gateStub(env, gateName("flow", m.tenantId, m.flowControl.key)).release([m.id]));
  const sourceId = m.queueName ? m.id : m.extra.queuedParent ? m.parentId : null;
  if (sourceId) {
    const row = await queuedSourceState(env.DB, sourceId);
    if (row?.queue_name && row.finished_at !== null && row.open_children === 0) {
      work.push(gateStub(env, gateName("queue", row.tenant_id, row.queue_name)).release([sourceId]));
    }
  }
  await Promise.all(work);
}
