/** Hands message ids to the deliveries queue when due now, or to a Scheduler shard when due later. */
import type { StoredMessage } from "../core/types";
import type { Env } from "../env";
import { type GateItem, type GateLimits, gateName, gateStub } from "../objects/gate";
import type { ScheduleItem } from "../objects/scheduler";
import { sendIds } from "./packs";

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


function byShard(env: Env, ids: string[], shards: number): Map<number, string[]> {
  const groups = new Map<number, string[]>();
  for (const id of ids) {
    const s = shardOf(id, shards);
    (groups.get(s) ?? groups.set(s, []).get(s)!).push(id);
  }
  return groups;
}

/** Puts ids due now on the deliveries queue (`sendIds`, unless a caller sends its own way). */
export type SendDue = (env: Env, ids: string[]) => Promise<void>;

export async function dispatch(env: Env, items: ScheduleItem[], now: number, shards: number, sendDue: SendDue = sendIds): Promise<void> {
  const due = items.filter((i) => i.dueAt <= now + NOW_SLACK_MS).map((i) => i.id);
  const later = items.filter((i) => i.dueAt > now + NOW_SLACK_MS);
  const work: Promise<unknown>[] = [];
  if (due.length) work.push(sendDue(env, due));
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

/** The gate a message must pass before delivery (its queue, else its flow-control key), or null. */
export function gateOf(m: Pick<StoredMessage, "tenantId" | "queueName" | "flowControl">): { name: string; next: string | null } | null {
  const flow = m.flowControl ? gateName("flow", m.tenantId, m.flowControl.key) : null;
  if (m.queueName) return { name: gateName("queue", m.tenantId, m.queueName), next: flow };
  return flow ? { name: flow, next: null } : null;
}

/** The flow-control limits a message carries. */
export function limitsOf(m: Pick<StoredMessage, "flowControl">): GateLimits {
  const fc = m.flowControl!;
  return { parallelism: fc.parallelism ?? null, rate: fc.rate ?? null, periodS: fc.periodS ?? (fc.rate ? 1 : null) };
}

/**
 * Hands newly stored messages on: gated ones (queue / flow control, stored with held = 1) to their gate,
 * the rest to the queue or the scheduler by due time.
 */
export async function handOff(env: Env, messages: StoredMessage[], now: number, shards: number, sendDue?: SendDue): Promise<void> {
  const plain: ScheduleItem[] = [];
  const gates = new Map<string, { items: GateItem[]; limits?: GateLimits; defaults?: GateLimits }>();
  const entry = (name: string) => gates.get(name) ?? gates.set(name, { items: [] }).get(name)!;
  for (const m of messages) {
    const gate = gateOf(m);
    if (!gate) {
      plain.push({ id: m.id, dueAt: m.dueAt });
      continue;
    }
    entry(gate.name).items.push({ id: m.id, dueAt: m.dueAt, next: gate.next });
    // A queue created on the fly starts with parallelism 1 (strict FIFO).
    if (m.queueName) entry(gate.name).defaults = { parallelism: 1 };
    // Latest flow-control values win (unless pinned): tell the key's gate even when the message waits in a queue first.
    if (m.flowControl) entry(gateName("flow", m.tenantId, m.flowControl.key)).limits = limitsOf(m);
  }
  await Promise.all([
    plain.length ? dispatch(env, plain, now, shards, sendDue) : null,
    ...[...gates].map(([name, g]) => gateStub(env, name).add(g.items, g.limits, g.defaults)),
  ]);
}
