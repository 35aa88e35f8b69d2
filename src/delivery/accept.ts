/** Accepting new messages: one D1 batch (rows + CREATED events), then the hand-off to queue or scheduler. */
import { settings } from "../config";
import type { StoredMessage } from "../core/types";
import { spillMessages } from "../db/blobs";
import { rememberFlowKey } from "../db/flow-keys";
import { insertMessages, watchMessages } from "../db/messages";
import type { Env } from "../env";
import { sendIds } from "./packs";
import { gateOf, handOff } from "./dispatch";
import { feedOf } from "./feed";
import { COMMIT_GAP_MS, GroupCommit } from "./group-commit";

export interface AcceptOptions {
  /**
   * True when every extra statement succeeds whatever other publishes do (e.g. INSERT OR IGNORE): the
   * messages may then share a D1 batch with concurrent publishes (group commit). Default false.
   */
  shareable?: boolean;
  /** The request's waitUntil, which keeps a shared commit alive if this client goes away. */
  waitUntil?: (p: Promise<unknown>) => void;
}

/**
 * Persists the messages before anything else (the publish is durable once this returns) and hands them on.
 * `extra` statements join the same batch (e.g. removing a DLQ entry that is being retried).
 */
export async function acceptMessages(
  env: Env,
  messages: StoredMessage[],
  now: number,
  extra: D1PreparedStatement[] = [],
  opts: AcceptOptions = {},
): Promise<void> {
  if (messages.length === 0 && extra.length === 0) return;
  await spillMessages(env, settings(env).inlineBodyMax, messages);
  return commitAccepted(prepareAccept(env, messages, now, extra), opts);
}

/** What stores `messages` (with their CREATED events) after `extra`: the statements are made at commit time. */
export function prepareAccept(env: Env, messages: StoredMessage[], now: number, extra: D1PreparedStatement[] = []): Accepted {
  const before: D1PreparedStatement[] = [...extra];
  const flowKeys = new Set<string>();
  for (const m of messages) {
    m.held = gateOf(m) !== null;
    if (m.flowControl && !flowKeys.has(m.flowControl.key)) {
      flowKeys.add(m.flowControl.key);
      before.push(rememberFlowKey(env.DB, m.tenantId, m.flowControl.key, now));
    }
  }
  return { env, messages, before };
}

/** Commits prepared messages (in a shared group commit when `shareable`) and hands them on, in order. */
export async function commitAccepted(item: Accepted, opts: AcceptOptions = {}): Promise<void> {
  const it = opts.waitUntil ? { ...item, waitUntil: opts.waitUntil } : item;
  if (opts.shareable) return publishesOf(item.env.DB).join(it, opts.waitUntil);
  return commitAndHandOff([it]);
}

export interface Accepted {
  env: Env;
  messages: StoredMessage[];
  /** Statements that go before the messages' rows. */
  before: D1PreparedStatement[];
  /** The request's waitUntil: with it, the publish is answered before its ids reach the queue (see `handOffAll`). */
  waitUntil?: (p: Promise<unknown>) => void;
}

/**
 * The statements of a group, in order: each item's `before`, then its rows. The rows of consecutive items with
 * nothing before them go in one multi-row INSERT: a D1 batch pays for each statement, and a group of plain publishes
 * is then one statement. Every statement sees the same rows written before it as with one INSERT per item.
 */
export function statementsOf(items: Accepted[]): D1PreparedStatement[] {
  const db = items[0].env.DB;
  const out: D1PreparedStatement[] = [];
  let rows: StoredMessage[] = [];
  for (const item of items) {
    if (item.before.length) {
      if (rows.length) out.push(...insertMessages(db, rows));
      rows = [];
      out.push(...item.before);
    }
    rows.push(...item.messages);
  }
  if (rows.length) out.push(...insertMessages(db, rows));
  return out;
}

/** One D1 batch for all; runs with the first item's bindings (the leader's request). */
async function commit(items: Accepted[]): Promise<void> {
  await items[0].env.DB.batch(statementsOf(items));
}

/**
 * One hand-off for all. The messages are stored once this runs, so a failed hand-off never fails the publishes
 * (a 5xx would make clients publish again, and get duplicates): the sweeper finds the rows, due and unfinished, and
 * hands them on (15 s past due), just as after a crash right here.
 *
 * Ids due now go to the queue through the isolate's feed (src/delivery/feed.ts), which spaces sends under load. With
 * the leader's waitUntil (the I/O runs in the leader's request), the publishes are answered without waiting for that
 * send: they are stored, and the leader's request lives on until the ids are queued.
 */
async function handOffAll(items: Accepted[]): Promise<void> {
  const env = items[0].env;
  const messages = items.flatMap((i) => i.messages);
  const later = items[0].waitUntil;
  const sendDue = async (e: Env, ids: string[]) => {
    const queued = feedOf(e.DELIVERIES).push(ids, (all) => sendIds(e, all));
    if (!later) return queued;
    later(queued.catch((err) => handOffFailed(env, messages, err)));
  };
  try {
    await handOff(env, messages, Date.now(), settings(env).schedulerShards, sendDue);
  } catch (err) {
    await handOffFailed(env, messages, err);
  }
}

async function handOffFailed(env: Env, messages: StoredMessage[], err: unknown): Promise<void> {
  console.error(`handing off ${messages.length} stored message(s) failed; the sweeper will hand them on`, err);
  // Watched at once, the sweeper's next re-drive finds them; if even this fails, its walk over recent ids does.
  await watchMessages(env.DB, messages.map((m) => m.id)).catch((e) => console.error("marking them for the sweeper failed too", e));
}

async function commitAndHandOff(items: Accepted[]): Promise<void> {
  await commit(items);
  await handOffAll(items);
}

/** Concurrent shareable publishes of this isolate (see group-commit.ts), one group commit per D1 shard. */
const publishesByDb = new WeakMap<D1Database, GroupCommit<Accepted>>();

function publishesOf(db: D1Database): GroupCommit<Accepted> {
  let g = publishesByDb.get(db);
  if (!g) {
    g = new GroupCommit<Accepted>(
      commit,
      (a) => ({ units: a.messages.length, bytes: a.messages.reduce((n, m) => n + (m.bodyRef ? 0 : m.body.byteLength), 0) }),
      // One commit at a time per shard: publishes that arrive meanwhile wait for it and go together in the next,
      // so groups and queue packs are fuller. Against two at a time, on npm start (bench/README.md, 2026-12-03):
      // 0.41 queue messages per publish instead of 0.72 at 8 publishers ($4.81 instead of $5.18 per million), and
      // at 1,000/s offered 757–987 accepted/s against 839–854, with fewer refusals. The cap on a group's messages is a
      // ceiling on publishes per commit, so on a busy thread, where a commit takes 60–100 ms, 64 let the line grow
      // at 1,100/s offered: 0–771 refusals in 25 s (median 635) against 0–451 (median 25) with 256, alternating rounds.
      // Under load, commits are spaced (COMMIT_GAP_MS).
      { leaders: 1, units: 256, bytes: 1 << 20, stuckMs: 5_000, spacing: { gapMs: COMMIT_GAP_MS, loadUnits: 2 } },
      handOffAll,
    );
    publishesByDb.set(db, g);
  }
  return g;
}
