/** The sweeper's reads and writes on messages: lost work to re-drive, held work to hand back to its gates. */
import type { FlowControl } from "../core/spec";

/**
 * Watched (messages_watch), unfinished, past due, no live attempt, not re-driven since `againBefore`: the queue or
 * the scheduler lost it.
 */
export async function redriveCandidates(db: D1Database, staleBefore: number, now: number, againBefore: number, limit: number): Promise<string[]> {
  const { results } = await db
    .prepare(
      `SELECT id FROM messages WHERE finished_at IS NULL AND watch = 1 AND held = 0 AND due_at < ?1
         AND (lease_until IS NULL OR lease_until < ?2) AND (redriven_at IS NULL OR redriven_at < ?3)
       ORDER BY due_at LIMIT ${limit}`,
    )
    .bind(staleBefore, now, againBefore)
    .all<{ id: string }>();
  return results.map((r) => r.id);
}

/**
 * One step of the walk over recent ids (they sort by creation time): the next `limit` ids after `after` and below
 * `ceiling`. Each that is unfinished and not yet watched (its queue hand-off may be lost, or its attempt is long)
 * joins messages_watch, where the re-drive finds it. Returns the last id visited (null: nothing left below the
 * ceiling) and how many joined.
 */
export async function watchWalk(db: D1Database, after: string, ceiling: string, limit: number): Promise<{ last: string | null; watched: number; visited: number }> {
  const { results } = await db
    .prepare(`SELECT id, (finished_at IS NULL AND watch = 0) AS straggler FROM messages WHERE id > ?1 AND id < ?2 ORDER BY id LIMIT ${limit}`)
    .bind(after, ceiling)
    .all<{ id: string; straggler: number }>();
  const stragglers = results.filter((r) => r.straggler === 1).map((r) => r.id);
  if (stragglers.length) {
    await db
      .prepare("UPDATE messages SET watch = 1 WHERE id IN (SELECT value FROM json_each(?1)) AND finished_at IS NULL")
      .bind(JSON.stringify(stragglers))
      .run();
  }
  return { last: results.length ? results[results.length - 1].id : null, watched: stragglers.length, visited: results.length };
}

/** Notes when ids were last re-driven (so the next sweeps leave them alone for a while). */
export async function markRedriven(db: D1Database, ids: string[], now: number): Promise<void> {
  await db.prepare(`UPDATE messages SET redriven_at = ?2 WHERE id IN (SELECT value FROM json_each(?1))`).bind(JSON.stringify(ids), now).run();
}

/** A held message as the sweeper sees it: which gates it waits for, nothing more. */
export interface HeldRef {
  id: string;
  tenantId: string;
  dueAt: number;
  queueName: string | null;
  flowControl: FlowControl | null;
  /** Its queue no longer exists (deleted while it waited): it is to be cancelled, not handed back. */
  queueGone: boolean;
}

const HELD_COLUMNS = `m.id, m.tenant_id, m.due_at, m.queue_name, m.flow_control,
  (m.queue_name IS NOT NULL AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.tenant_id = m.tenant_id AND q.name = m.queue_name)) AS queue_gone`;

function toHeld(r: Record<string, unknown>): HeldRef {
  return {
    id: String(r.id),
    tenantId: String(r.tenant_id),
    dueAt: Number(r.due_at),
    queueName: r.queue_name == null ? null : String(r.queue_name),
    flowControl: r.flow_control == null ? null : (JSON.parse(String(r.flow_control)) as FlowControl),
    queueGone: Number(r.queue_gone) === 1,
  };
}

/**
 * Held work that has waited past `staleBefore`, in two parts that together reach every gate and every message:
 * - `oldest`: the `perGate` oldest messages of each gate (tenant, queue, flow-control key), so that one gate's
 *   long backlog (a paused queue) never hides another gate's lost hand-off;
 * - `walk`: the next `walkLimit` messages after `cursor` in (due_at, id) order, so that successive sweeps visit all
 *   held messages; `next` is where the following sweep goes on ("" when the walk starts over).
 */
export async function heldWork(
  db: D1Database,
  staleBefore: number,
  perGate: number,
  walkLimit: number,
  cursor: string,
): Promise<{ oldest: HeldRef[]; walk: HeldRef[]; next: string }> {
  const [at, after] = cursor ? [Number(cursor.slice(0, cursor.indexOf(":"))), cursor.slice(cursor.indexOf(":") + 1)] : [-1, ""];
  const [oldest, walk] = await db.batch<Record<string, unknown>>([
    db
      .prepare(
        `SELECT ${HELD_COLUMNS} FROM (
           SELECT *, row_number() OVER (PARTITION BY tenant_id, queue_name, json_extract(flow_control, '$.key')
             ORDER BY due_at, id) AS rank
           FROM messages WHERE finished_at IS NULL AND watch = 1 AND held = 1 AND due_at < ?1) m
         WHERE m.rank <= ?2`,
      )
      .bind(staleBefore, perGate),
    db
      .prepare(
        `SELECT ${HELD_COLUMNS} FROM messages m WHERE m.finished_at IS NULL AND m.watch = 1 AND m.held = 1 AND m.due_at < ?1
           AND (m.due_at, m.id) > (?2, ?3) ORDER BY m.due_at, m.id LIMIT ?4`,
      )
      .bind(staleBefore, at, after, walkLimit),
  ]);
  const walked = walk.results.map(toHeld);
  const last = walked[walked.length - 1];
  return { oldest: oldest.results.map(toHeld), walk: walked, next: walked.length === walkLimit ? `${last.dueAt}:${last.id}` : "" };
}

/** A value the sweeper keeps between runs in this shard (`sweeper_state`), or "" if none. */
export async function sweeperValue(db: D1Database, name: string): Promise<string> {
  const row = await db.prepare("SELECT value FROM sweeper_state WHERE name = ?1").bind(name).first<{ value: string }>();
  return row?.value ?? "";
}

/** Stores a sweeper value; an unchanged value writes nothing (D1 would bill the row). */
export async function setSweeperValue(db: D1Database, name: string, value: string): Promise<void> {
  await db
    .prepare("INSERT INTO sweeper_state (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE value <> excluded.value")
    .bind(name, value)
    .run();
}
