/** The safety net, run by the cron trigger: re-drives work the queue lost or a crash left behind, prunes old rows. */
import { settings } from "../config";
import type { Env } from "../env";
import { overdueSchedules } from "../db/schedules";
import { gateName, gateStub } from "../objects/gate";
import { timerStub } from "../objects/schedule-timer";
import { collectOrphans, deleteUnreferenced } from "../db/blobs";
import { pruneDedup, pruneStep } from "../db/retention";
import { allShards } from "../db/shards";
import { rowToMessage } from "../db/messages";
import { handOff } from "./dispatch";
import { sendIds } from "./packs";

const REDRIVE_LIMIT = 1000;
/** Rows one prune statement deletes at most: a short write, so publishes wait at most one step for D1. */
const PRUNE_STEP = 1000;
/** How long one sweep keeps pruning (it runs every minute; 10 million messages a day need about 7,000 per minute). */
const PRUNE_BUDGET_MS = 20_000;
/**
 * After each step the sweep rests this many times as long as the step took, leaving D1 to publishes and deliveries
 * most of the time (bench/prune.mjs measures both sides of this trade).
 */
const PRUNE_REST_FACTOR = 3;

export interface SweepReport {
  regated: number;
  redriven: number;
  rearmedSchedules: number;
  prunedEvents: number;
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
}

/** Sweeps every D1 shard in turn (each holds its own tenants' messages) and adds up the reports. */
export async function sweepAll(env: Env, now: number, opts: SweepOptions = {}): Promise<SweepReport> {
  const total: SweepReport = { regated: 0, redriven: 0, rearmedSchedules: 0, prunedEvents: 0, prunedDlq: 0, prunedMessages: 0, prunedBodies: 0 };
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
  // Unfinished, past due, no live attempt, not re-driven recently: the queue or the scheduler lost it.
  const { results } = await env.DB.prepare(
    `SELECT id FROM messages WHERE finished_at IS NULL AND held = 0 AND due_at < ?1
       AND (lease_until IS NULL OR lease_until < ?2) AND (redriven_at IS NULL OR redriven_at < ?3)
     ORDER BY due_at LIMIT ${REDRIVE_LIMIT}`,
  )
    .bind(stale, now, now - againAfter)
    .all<{ id: string }>();
  const ids = results.map((r) => r.id);
  if (ids.length) {
    await env.DB.prepare(`UPDATE messages SET redriven_at = ?2 WHERE id IN (SELECT value FROM json_each(?1))`)
      .bind(JSON.stringify(ids), now)
      .run();
    await sendIds(env, ids);
  }
  // Held messages that have waited long past due: their gate may never have received them (a crash after the
  // D1 write), may have lost its alarm, or may hold slots whose release was lost. Hand them over again
  // (idempotent) and let each such gate free slots of finished messages.
  const { results: stuck } = await env.DB.prepare(
    `SELECT * FROM messages WHERE finished_at IS NULL AND held = 1 AND due_at < ?1 ORDER BY due_at LIMIT 500`,
  )
    .bind(stale)
    .all<Record<string, unknown>>();
  const held = stuck.map(rowToMessage);
  const kinds = new Map<string, "queue" | "flow">();
  for (const m of held) {
    if (m.queueName) kinds.set(gateName("queue", m.tenantId, m.queueName), "queue");
    if (m.flowControl) kinds.set(gateName("flow", m.tenantId, m.flowControl.key), "flow");
  }
  await Promise.all([...kinds].map(([name, kind]) => gateStub(env, name).reconcile(kind, s.redriveAfterMs)));
  if (held.length) await handOff(env, held, now, s.schedulerShards);
  // A schedule whose fire is long overdue lost its timer (e.g. local state restored without alarms): re-arm it
  // for now; it fires once, not once per missed minute.
  const overdue = await overdueSchedules(env.DB, stale, 100);
  await Promise.all(overdue.map((o) => timerStub(env, o.tenantId, o.id).arm(o.tenantId, o.id, now)));
  const pruned = await prune(env, now, opts.pruneBudgetMs ?? PRUNE_BUDGET_MS);
  return {
    regated: held.length,
    redriven: ids.length,
    rearmedSchedules: overdue.length,
    ...pruned,
  };
}

type PruneCounts = Pick<SweepReport, "prunedEvents" | "prunedDlq" | "prunedMessages" | "prunedBodies">;

/**
 * Deletes what retention has expired, in steps of PRUNE_STEP rows per table, until nothing expired is left or
 * `budgetMs` is spent. Log entries go after LOG_RETENTION; DLQ entries after DLQ_RETENTION; a finished message
 * after LOG_RETENTION once no DLQ entry refers to it. Each step returns the R2 keys its rows referred to; objects
 * no row refers to any more are deleted after it.
 */
async function prune(env: Env, now: number, budgetMs: number): Promise<PruneCounts> {
  const s = settings(env);
  const out: PruneCounts = { prunedEvents: 0, prunedDlq: 0, prunedMessages: 0, prunedBodies: 0 };
  const deadline = Date.now() + budgetMs;
  await pruneDedup(env.DB, now, PRUNE_STEP * 5).run();
  const cutoffs = { eventsBefore: now - s.logRetentionMs, dlqBefore: now - s.dlqRetentionMs, messagesBefore: now - s.logRetentionMs };
  for (;;) {
    const stepStart = Date.now();
    const [ev, dl, msg] = await env.DB.batch<{ ref: string | null }>(pruneStep(env.DB, PRUNE_STEP, cutoffs));
    out.prunedEvents += ev.results.length;
    out.prunedDlq += dl.results.length;
    out.prunedMessages += msg.results.length;
    const refs = [ev, dl, msg].flatMap((r) => r.results.map((row) => row.ref).filter((k): k is string => k !== null));
    out.prunedBodies += await deleteUnreferenced(env, refs, now);
    const full = Math.max(ev.results.length, dl.results.length, msg.results.length) === PRUNE_STEP;
    if (!full || Date.now() >= deadline) return out;
    await new Promise((r) => setTimeout(r, (Date.now() - stepStart) * PRUNE_REST_FACTOR));
  }
}
