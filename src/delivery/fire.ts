/** One fire of a schedule: a new message keyed by (schedule, fire time), so a repeated fire produces nothing new. */
import { shardEnv, tenantShard } from "../db/shards";
import { loadBlob } from "../db/blobs";
import { settings } from "../config";
import { parseCron, nextFire } from "../core/cron";
import { derivedMessageId } from "../core/ids";
import { redactedForms } from "../core/redact";
import type { StoredMessage } from "../core/types";
import { insertMessages } from "../db/messages";
import { ensureQueue } from "../db/queues";
import { getSchedule, recordFire } from "../db/schedules";
import { rememberFlowKey } from "../db/flow-keys";
import { getGroup } from "../db/topics";
import type { Env } from "../env";
import { gateOf, handOff } from "./dispatch";

/** A message id derived from the fire: the same fire always makes the same id, stamped with the fire time. */
function fireMessageId(shard: number, tenantId: string, scheduleId: string, fireTime: number, url: string): Promise<string> {
  return derivedMessageId(shard, fireTime, `${tenantId}\u0000${scheduleId}\u0000${fireTime}\u0000${url}`);
}

/**
 * Fires a schedule if its time has come and returns the next fire time to arm (null: deleted, paused or
 * never again). Missed fires (the system was down) collapse into one fire now, never a burst.
 */
export async function fireSchedule(anyEnv: Env, tenantId: string, scheduleId: string, now: number): Promise<number | null> {
  // The ScheduleTimer knows the tenant; its data lives in the tenant's shard.
  const shard = await tenantShard(anyEnv, tenantId);
  const env = shardEnv(anyEnv, shard);
  const sched = await getSchedule(env.DB, tenantId, scheduleId);
  if (!sched || sched.isPaused || sched.nextScheduleTime === null) return null;
  const cron = parseCron(sched.cron);
  if (sched.nextScheduleTime > now) return sched.nextScheduleTime; // woke early: keep waiting
  const fireTime = sched.nextScheduleTime;
  const next = nextFire(cron, now);
  const delay = sched.delayMs ?? 0;
  // A URL-group destination fans out: one message per endpoint, each with its own fire-derived id.
  const targets: { url: string; topicName: string | null; endpointName: string | null }[] = [];
  if (/^https?:\/\//i.test(sched.destination)) targets.push({ url: sched.destination, topicName: null, endpointName: null });
  else {
    const group = await getGroup(env.DB, tenantId, sched.destination);
    for (const e of group?.endpoints ?? []) targets.push({ url: e.url, topicName: sched.destination, endpointName: e.name || null });
  }
  if (sched.bodyRef && sched.redact?.body) sched.body = await loadBlob(env, sched.bodyRef);
  const redacted = await redactedForms(sched.redact, sched.headers, sched.body);
  const messages: StoredMessage[] = [];
  for (const t of targets) {
    const m: StoredMessage = {
      id: await fireMessageId(shard, tenantId, scheduleId, fireTime, t.url),
      tenantId,
      kind: "message",
      parentId: null,
      url: t.url,
      method: sched.method,
      headers: sched.headers,
      body: sched.body,
      // Content-addressed: the fired messages share the schedule's stored body.
      bodyRef: sched.bodyRef,
      maxRetries: sched.retries,
      retryDelayExpr: sched.retryDelayExpr,
      timeoutMs: sched.timeoutMs,
      notBefore: delay ? now + delay : 0,
      createdAt: now,
      callback: sched.callback,
      failureCallback: sched.failureCallback,
      callbackConfig: sched.callbackConfig,
      failureCallbackConfig: sched.failureCallbackConfig,
      topicName: t.topicName,
      endpointName: t.endpointName,
      queueName: sched.queueName,
      scheduleId,
      callerIp: sched.callerIp,
      labels: sched.labels,
      flowControl: sched.flowControl,
      extra: { fireTime },
      state: "CREATED",
      retried: 0,
      dueAt: now + delay,
      leaseUntil: null,
      cancelRequested: false,
      finishedAt: null,
      held: false,
      redacted,
    };
    m.held = gateOf(m) !== null;
    messages.push(m);
  }
  const stmts: D1PreparedStatement[] = [];
  // Multi-row inserts: a schedule aimed at a group of 1,000 endpoints stays a few statements. A repeated fire
  // inserts neither the messages (their ids derive from the fire) nor their CREATED entries again.
  stmts.push(...insertMessages(env.DB, messages));
  if (sched.queueName) stmts.push(ensureQueue(env.DB, tenantId, sched.queueName, now));
  if (sched.flowControl) {
    stmts.push(rememberFlowKey(env.DB, tenantId, sched.flowControl.key, now));
  }
  stmts.push(recordFire(env.DB, tenantId, scheduleId, fireTime, next, messages.map((m) => m.id)));
  await env.DB.batch(stmts);
  await handOff(env, messages, now, settings(env).schedulerShards);
  return next;
}
