/**
 * Hand-offs to the deliveries queue carry ids in packs: one queue message holds up to `PACK_IDS` ids, so that a
 * group commit of many publishes costs a few queue operations instead of three per message.
 */
import type { DeliveryTask, Env } from "../env";
import { noteQueueMetrics } from "./pressure";

/**
 * Ids per queue message. A pack is far below the 64 KB that Queues bill as one operation (an id is about 40
 * bytes). The bound is the consumer: a batch of `max_batch_size` packs is one invocation, and every id in it may
 * cost an attempt and an inline callback, two subrequests of the 1,000 an invocation may make.
 */
export const PACK_IDS = 25;
/**
 * Ids handed back to the queue after failing inside the consumer travel in a new pack, which would reset the
 * queue's own retry count; past this many tries the pack is retried instead, and the queue's `max_retries` ends it
 * (the sweeper re-drives whatever is still unfinished).
 */
export const PACK_TRIES_MAX = 100;
/** Queue messages per `sendBatch` call (the Queues limit is 100 messages and 256 KB). */
const SEND_BATCH = 100;

/** The ids a task carries: a pack, or the single id of the older form `{ id }` (still read). */
export function idsOf(task: DeliveryTask): string[] {
  if (Array.isArray(task.ids)) return task.ids.filter((id): id is string => typeof id === "string");
  return typeof task.id === "string" ? [task.id] : [];
}

/** Splits ids into packs of at most `PACK_IDS`. */
export function packs(ids: readonly string[], tries = 0): DeliveryTask[] {
  const out: DeliveryTask[] = [];
  for (let i = 0; i < ids.length; i += PACK_IDS) out.push(tries ? { ids: ids.slice(i, i + PACK_IDS), tries } : { ids: ids.slice(i, i + PACK_IDS) });
  return out;
}

/** Sends ids that are due now to the deliveries queue, in packs (`delaySeconds` delays them all). */
export async function sendIds(env: Env, ids: readonly string[], delaySeconds?: number, tries = 0): Promise<void> {
  const tasks = packs(ids, tries);
  const options = delaySeconds ? { delaySeconds } : undefined;
  if (tasks.length === 1) {
    noteQueueMetrics(await env.DELIVERIES.send(tasks[0], options));
    return;
  }
  for (let i = 0; i < tasks.length; i += SEND_BATCH) {
    noteQueueMetrics(
      await env.DELIVERIES.sendBatch(
        tasks.slice(i, i + SEND_BATCH).map((body) => ({ body })),
        options,
      ),
    );
  }
}
