/** Hands message ids to the deliveries queue when due now, or to a Scheduler shard when due later. */
import type { Env } from "../env";
import type { ScheduleItem } from "../objects/scheduler";

/** Within this many ms of now, a message goes straight to the queue. */
const NOW_SLACK_MS = 20;

/** FNV-1a: a stable shard for an id. */
export function shardOf(id: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}

export function schedulerStub(env: Env, shard: number) {
  return env.SCHEDULER.get(env.SCHEDULER.idFromName(`shard-${shard}`));
}

export async function sendNow(env: Env, ids: string[]): Promise<void> {
  if (ids.length === 1) {
    await env.DELIVERIES.send({ id: ids[0] });
    return;
  }
  for (let i = 0; i < ids.length; i += 100) {
    await env.DELIVERIES.sendBatch(ids.slice(i, i + 100).map((id) => ({ body: { id } })));
  }
}

function byShard(env: Env, ids: string[], shards: number): Map<number, string[]> {
  const groups = new Map<number, string[]>();
  for (const id of ids) {
    const s = shardOf(id, shards);
    (groups.get(s) ?? groups.set(s, []).get(s)!).push(id);
  }
  return groups;
}

export async function dispatch(env: Env, items: ScheduleItem[], now: number, shards: number): Promise<void> {
  const due = items.filter((i) => i.dueAt <= now + NOW_SLACK_MS).map((i) => i.id);
  const later = items.filter((i) => i.dueAt > now + NOW_SLACK_MS);
  const work: Promise<unknown>[] = [];
  if (due.length) work.push(sendNow(env, due));
  if (later.length) {
    const dueAt = new Map(later.map((i) => [i.id, i.dueAt]));
    for (const [shard, ids] of byShard(env, later.map((i) => i.id), shards)) {
      work.push(schedulerStub(env, shard).schedule(ids.map((id) => ({ id, dueAt: dueAt.get(id)! }))));
    }
  }
  await Promise.all(work);
}

/** Removes ids from their scheduler shards (best effort: the consumer skips finished messages anyway). */
export async function unschedule(env: Env, ids: string[], shards: number): Promise<void> {
  await Promise.all([...byShard(env, ids, shards)].map(([shard, list]) => schedulerStub(env, shard).cancel(list)));
}
