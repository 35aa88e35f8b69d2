/** The safety net, run by the cron trigger: re-drives work the queue lost or a crash left behind, prunes old rows. */
import { settings } from "../config";
import type { Env } from "../env";
import { overdueSchedules } from "../db/schedules";
import { gateStub } from "../objects/gate";
import { timerStub } from "../objects/schedule-timer";
import { collectOrphans, deleteUnreferenced } from "../db/blobs";
import { deleteExpired, pruneDedup, pruneDlq, pruneLegacy, pruneRuns, pruneWalk } from "../db/retention";
import { dayOf, pruneUsage } from "../db/usage";
import { allShards } from "../db/shards";
import { cancelMessages } from "../db/messages";
import { type HeldRef, heldWork, markRedriven, redriveCandidates, setSweeperValue, sweeperValue, watchWalk } from "../db/sweeps";
import { idFloor } from "../core/ids";
import type { GateItem, GateLimits } from "../objects/gate";
import { gateOf, limitsOf } from "./dispatch";
import { sendIds } from "./packs";

const REDRIVE_LIMIT = 1000;
/** Held messages per gate that each sweep hands back (the oldest of each gate). */
const HELD_PER_GATE = 100;
/** Held messages each sweep visits in the walk over all of them (`sweeper_state` keeps where it is). */
const HELD_WALK = 500;
const HELD_CURSOR = "held_cursor";
/** Where the walk over recent ids goes on (see `watchRecent`), and how far it may go per sweep. */
const WATCH_CURSOR = "watch_cursor";
const WATCH_STEP = 5_000;
const WATCH_STEPS = 10;
/**
 * The walk over recent ids stays this far behind the clock. A message due at once that is inserted with an id
 * made less than LATE_ID_MS (src/db/messages.ts) before is not watched, so its insert must land within this lag
 * minus that: 25 s, far beyond a D1 write.
 */
const WATCH_LAG_MS = 30_000;
/** Where pruning's walk over ids goes on, and when it next starts again from the oldest id. */
const PRUNE_CURSOR = "prune_cursor";
const PRUNE_REWALK_AT = "prune_rewalk_at";
/** How often pruning walks again from the oldest id, to visit rows it had to keep (a DLQ entry, still pending). */
const PRUNE_REWALK_MS = 60 * 60_000;
/**
 * Rows one prune statement deletes at most: a short write (about 10 ms of SQLite on a million rows), so publishes
 * wait at most one step for D1. Steps of 250 rows pruned at about half the rate (bench/prune.mjs --server lean).
 */
const PRUNE_STEP = 1000;
/**
 * Steps one sweep takes at most. Each is up to four D1 queries (walk, delete, DLQ delete, R2 reference check), and
 * an invocation may make 1,000; 150 steps prune 150,000 messages a minute, far above 10 million a day per shard.
 */
const PRUNE_STEPS_MAX = 150;
/** How long one sweep keeps pruning (it runs every minute; 10 million messages a day need about 7,000 per minute). */
const PRUNE_BUDGET_MS = 20_000;
/**
 * After each full step (of pruning, or of the walk over recent ids) the sweep rests this many times as long as the
 * step took, leaving D1 to publishes and deliveries most of the time: statements sent back to back held publishes
 * up for as long as all of them took (bench/prune.mjs measures both sides of this trade).
 */
const STEP_REST_FACTOR = 12;

/** Rests after a step that started at `stepStart` (see STEP_REST_FACTOR). */
const restAfter = (stepStart: number) => new Promise((r) => setTimeout(r, (Date.now() - stepStart) * STEP_REST_FACTOR));

export interface SweepReport {
  regated: number;
  redriven: number;
  rearmedSchedules: number;
  /** Unfinished messages the walk over recent ids added to messages_watch (lost hand-offs, long attempts). */
  watched: number;
  prunedDlq: number;
  prunedMessages: number;
  /** R2 objects deleted because no row refers to them any more. */
  prunedBodies: number;
}

export interface SweepOptions {
  /** How long this sweep may spend pruning (tests and benchmarks set it). */
  pruneBudgetMs?: number;
  /**
   * The first sweep of a freshly started local server (dev mode): its queue broker started empty, so every
   * overdue message is re-sent, even one re-driven minutes ago.
   */
  afterRestart?: boolean;
  /**
   * Prune from the oldest id, as the hourly walk does, not from where the last sweep stopped (for rows whose ids
   * were made in the past, e.g. set up by tests).
   */
  rewalk?: boolean;
}

/** Sweeps every D1 shard in turn (each holds its own tenants' messages) and adds up the reports. */
export async function sweepAll(env: Env, now: number, opts: SweepOptions = {}): Promise<SweepReport> {
  const total: SweepReport = { regated: 0, redriven: 0, rearmedSchedules: 0, watched: 0, prunedDlq: 0, prunedMessages: 0, prunedBodies: 0 };
  for (const shard of allShards(env)) {
    const r = await sweep(shard, now, opts);
    for (const k of Object.keys(total) as (keyof SweepReport)[]) total[k] += r[k];
  }
  // The walk judges an object's age by the real clock, even when a caller sweeps "as of" a later time.
  total.prunedBodies += await collectOrphans(env, Math.min(now, Date.now()));
  return total;
}

/** One shard's sweep (`env.DB` is the shard). */
export async function sweep(env: Env, now: number, opts: SweepOptions = {}): Promise<SweepReport> {
  const s = settings(env);
  const stale = now - s.redriveAfterMs;
  const againAfter = opts.afterRestart && s.devMode ? 0 : s.redriveAgainMs;
  const report: SweepReport = { regated: 0, redriven: 0, rearmedSchedules: 0, watched: 0, prunedDlq: 0, prunedMessages: 0, prunedBodies: 0 };
  // Each step runs on its own: one that fails (a D1 hiccup, a gate that throws) is logged and the others still run.
  await step("watching recent unfinished messages", async () => {
    report.watched = await watchRecent(env, now);
  });
  await step("re-driving lost deliveries", async () => {
    const ids = await redriveCandidates(env.DB, stale, now, now - againAfter, REDRIVE_LIMIT);
    if (ids.length) {
      await markRedriven(env.DB, ids, now);
      await sendIds(env, ids);
    }
    report.redriven = ids.length;
  });
  await step("repairing held work", async () => {
    report.regated = await repairHeld(env, now, stale);
  });
  // A schedule whose fire is long overdue lost its timer (e.g. local state restored without alarms): re-arm it
  // for now; it fires once, not once per missed minute.
  await step("re-arming overdue schedules", async () => {
    const overdue = await overdueSchedules(env.DB, stale, 100);
    await Promise.all(overdue.map((o) => timerStub(env, o.tenantId, o.id).arm(o.tenantId, o.id, now)));
    report.rearmedSchedules = overdue.length;
  });
  await step("pruning", async () => {
    Object.assign(report, await prune(env, now, opts.pruneBudgetMs ?? PRUNE_BUDGET_MS, opts.rewalk ?? false));
  });
  return report;
}

async function step(what: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    console.error(`sweeper: ${what} failed; the next sweep tries again`, err);
  }
}

/**
 * Held messages that have waited long past due: their gate may never have received them (a crash after the D1
 * write), may have lost its alarm, or may hold slots whose release was lost. Each gate of this sweep's held work
 * frees slots of finished messages, and gets its messages again (ids only: adding is idempotent, and the limits a
 * message carried are never re-sent, since newer ones may have replaced them; a gate that never had limits gets
 * them as defaults). Messages whose queue was deleted are cancelled instead. Returns how many were handed back.
 */
async function repairHeld(env: Env, now: number, stale: number): Promise<number> {
  const s = settings(env);
  const cursor = await sweeperValue(env.DB, HELD_CURSOR);
  const work = await heldWork(env.DB, stale, HELD_PER_GATE, HELD_WALK, cursor);
  await setSweeperValue(env.DB, HELD_CURSOR, work.next);
  const seen = new Map<string, HeldRef>();
  for (const h of [...work.oldest, ...work.walk]) seen.set(h.id, h);
  const orphans = new Map<string, string[]>();
  const gates = new Map<string, { kind: "queue" | "flow"; items: GateItem[]; defaults: GateLimits }>();
  for (const h of seen.values()) {
    if (h.queueGone) {
      (orphans.get(h.tenantId) ?? orphans.set(h.tenantId, []).get(h.tenantId)!).push(h.id);
      continue;
    }
    const gate = gateOf(h);
    if (!gate) continue;
    const kind = h.queueName ? "queue" : "flow";
    const g = gates.get(gate.name) ?? gates.set(gate.name, { kind, items: [], defaults: kind === "queue" ? { parallelism: 1 } : limitsOf(h) }).get(gate.name)!;
    g.items.push({ id: h.id, dueAt: h.dueAt, next: gate.next });
    // The key's gate of a queued message may never have been configured either.
    if (gate.next && h.flowControl && !gates.has(gate.next)) gates.set(gate.next, { kind: "flow", items: [], defaults: limitsOf(h) });
  }
  for (const [tenantId, ids] of orphans) await cancelMessages(env.DB, tenantId, ids, now);
  await Promise.all(
    [...gates].map(async ([name, g]) => {
      const stub = gateStub(env, name);
      await stub.reconcile(g.kind, s.redriveAfterMs);
      await stub.add(g.items, undefined, g.defaults);
    }),
  );
  return seen.size - [...orphans.values()].reduce((n, l) => n + l.length, 0);
}

/**
 * Walks the ids made since the last sweep, up to WATCH_LAG_MS ago, and puts every one still unfinished and not yet
 * watched into messages_watch. A message due at once is not watched when it is inserted (the common path writes no
 * index entry for the sweeper); this walk is how a lost hand-off or a crashed attempt of one is found.
 */
async function watchRecent(env: Env, now: number): Promise<number> {
  // The cursor is the last id visited, never the ceiling: a sweep "as of" a later time skips no id made after it.
  const ceiling = idFloor(now - WATCH_LAG_MS);
  let cursor = await sweeperValue(env.DB, WATCH_CURSOR);
  let watched = 0;
  for (let i = 0; i < WATCH_STEPS; i++) {
    const stepStart = Date.now();
    const r = await watchWalk(env.DB, cursor, ceiling, WATCH_STEP);
    watched += r.watched;
    if (r.last !== null) cursor = r.last;
    if (r.visited < WATCH_STEP) break;
    if (i + 1 < WATCH_STEPS) await restAfter(stepStart);
  }
  await setSweeperValue(env.DB, WATCH_CURSOR, cursor);
  return watched;
}

type PruneCounts = Pick<SweepReport, "prunedDlq" | "prunedMessages" | "prunedBodies">;

const refsOf = (rows: { ref?: string | null; refs?: string | null }[]): string[] =>
  rows.flatMap((r) => [...(r.ref ? [r.ref] : []), ...(r.refs ? (JSON.parse(r.refs) as string[]) : [])]);

/**
 * Deletes what retention has expired, in steps of PRUNE_STEP rows, until nothing expired is left or `budgetMs` is
 * spent. DLQ entries go after DLQ_RETENTION; a finished message (with its log) after LOG_RETENTION once no DLQ
 * entry refers to it. Messages are found by a walk over ids (in creation order) up to the first id made at the
 * cutoff; the walk goes on where the last sweep stopped and starts again from the oldest id every
 * PRUNE_REWALK_MS, for rows it had to keep. R2 objects no row refers to any more are deleted after each step.
 */
async function prune(env: Env, now: number, budgetMs: number, rewalk: boolean): Promise<PruneCounts> {
  const s = settings(env);
  const db = env.DB;
  const out: PruneCounts = { prunedDlq: 0, prunedMessages: 0, prunedBodies: 0 };
  const deadline = Date.now() + budgetMs;
  await pruneDedup(db, now, PRUNE_STEP * 5).run();
  await pruneUsage(db, dayOf(now) - 1).run();
  const runs = await pruneRuns(db, now - s.logRetentionMs, PRUNE_STEP).all<{ refs: string | null }>();
  out.prunedBodies += await deleteUnreferenced(env, refsOf(runs.results.map((r) => ({ ref: null, refs: r.refs }))), now);
  const before = now - s.logRetentionMs;
  const dlqBefore = now - s.dlqRetentionMs;
  const ceiling = idFloor(before);
  let cursor = await sweeperValue(db, PRUNE_CURSOR);
  if (rewalk) cursor = "";
  else if (Number((await sweeperValue(db, PRUNE_REWALK_AT)) || 0) <= now) {
    cursor = "";
    await setSweeperValue(db, PRUNE_REWALK_AT, String(now + PRUNE_REWALK_MS));
  }
  try {
    // Messages stored before ids carried a time, once per sweep.
    const [legacy] = await db.batch<{ ref: string | null; refs: string | null }>(pruneLegacy(db, before, PRUNE_STEP));
    out.prunedMessages += legacy.results.length;
    out.prunedBodies += await deleteUnreferenced(env, refsOf(legacy.results), now);
    for (let steps = 1; ; steps++) {
      const stepStart = Date.now();
      const walked = await pruneWalk(db, cursor, ceiling, before, PRUNE_STEP);
      const expired = walked.filter((r) => r.expired === 1).map((r) => r.id);
      const stmts = [pruneDlq(db, dlqBefore, PRUNE_STEP)];
      if (expired.length) stmts.push(deleteExpired(db, expired, before));
      const [dl, msg] = await db.batch<{ ref: string | null; refs?: string | null }>(stmts);
      out.prunedDlq += dl.results.length;
      out.prunedMessages += msg?.results.length ?? 0;
      out.prunedBodies += await deleteUnreferenced(env, [...refsOf(dl.results), ...refsOf(msg?.results ?? [])], now);
      if (walked.length) cursor = walked[walked.length - 1].id;
      const full = walked.length === PRUNE_STEP || dl.results.length === PRUNE_STEP;
      if (!full || Date.now() >= deadline || steps >= PRUNE_STEPS_MAX) return out;
      await restAfter(stepStart);
    }
  } finally {
    await setSweeperValue(db, PRUNE_CURSOR, cursor);
  }
}
