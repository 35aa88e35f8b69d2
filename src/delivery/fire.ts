/** One fire of a schedule: a new message keyed by (schedule, fire time), so a repeated fire produces nothing new. */
import { settings } from "../config";
import { parseCron, nextFire } from "../core/cron";
import { sha256Hex } from "../core/encoding";
import type { StoredMessage } from "../core/types";
import { insertMessage } from "../db/messages";
import { getSchedule } from "../db/schedules";
import type { Env } from "../env";
import { gateOf, handOff } from "./dispatch";

/** A message id derived from the fire: the same fire always makes the same id. */
async function fireMessageId(tenantId: string, scheduleId: string, fireTime: number): Promise<string> {
  return "msg_" + (await sha256Hex(`${tenantId}\u0000${scheduleId}\u0000${fireTime}`)).slice(0, 32);
}

/**
 * Fires a schedule if its time has come and returns the next fire time to arm (null: deleted, paused or
 * never again). Missed fires (the system was down) collapse into one fire now, never a burst.
 */
export async function fireSchedule(env: Env, tenantId: string, scheduleId: string, now: number): Promise<number | null> {
  const sched = await getSchedule(env.DB, tenantId, scheduleId);
  if (!sched || sched.isPaused || sched.nextScheduleTime === null) return null;
  const cron = parseCron(sched.cron);
  if (sched.nextScheduleTime > now) return sched.nextScheduleTime; // woke early: keep waiting
  const fireTime = sched.nextScheduleTime;
  const next = nextFire(cron, now);
  const delay = sched.delayMs ?? 0;
  const id = await fireMessageId(tenantId, scheduleId, fireTime);
  const m: StoredMessage = {
    id,
    tenantId,
    kind: "message",
    parentId: null,
    url: sched.destination,
    method: sched.method,
    headers: sched.headers,
    body: sched.body,
    maxRetries: sched.retries,
    retryDelayExpr: sched.retryDelayExpr,
    timeoutMs: sched.timeoutMs,
    notBefore: delay ? now + delay : 0,
    createdAt: now,
    callback: sched.callback,
    failureCallback: sched.failureCallback,
    callbackConfig: sched.callbackConfig,
    failureCallbackConfig: sched.failureCallbackConfig,
    topicName: null,
    endpointName: null,
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
    redacted: null,
  };
  m.held = gateOf(m) !== null;
  await env.DB.batch([
    insertMessage(env.DB, m),
    env.DB.prepare(
      `INSERT INTO events (tenant_id, message_id, time, state, next_delivery_time)
       SELECT ?1, ?2, ?3, 'CREATED', ?4 WHERE changes() = 1`,
    ).bind(tenantId, id, now, delay ? now + delay : null),
    env.DB.prepare(
      `UPDATE schedules SET last_schedule_time = ?3, next_schedule_time = ?4, last_message_ids = ?5
       WHERE tenant_id = ?1 AND id = ?2 AND next_schedule_time = ?6 AND is_paused = 0`,
    ).bind(tenantId, scheduleId, fireTime, next, JSON.stringify([id]), fireTime),
  ]);
  await handOff(env, [m], now, settings(env).schedulerShards);
  return next;
}
