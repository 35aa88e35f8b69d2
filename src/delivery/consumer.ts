/** The deliveries queue consumer: claims each message, makes the attempt, records the outcome. */
import { type Settings, settings } from "../config";
import { nextRetryDelayMs } from "../core/backoff";
import { callbackMessage } from "../core/callback";
import { compileRetryDelay } from "../core/expr";
import { mapToHeaders } from "../core/headers";
import { newDlqId } from "../core/ids";
import type { AttemptResult, StoredMessage } from "../core/types";
import { insertDlq } from "../db/dlq";
import { insertEvent } from "../db/events";
import { insertMessage, loadForDelivery } from "../db/messages";
import type { DeliveryTask, Env } from "../env";
import type { ScheduleItem } from "../objects/scheduler";
import { gateName, gateStub } from "../objects/gate";
import { attempt } from "./attempt";
import { dispatch } from "./dispatch";

/** A task that arrives this much before its message is due is left to the scheduler. */
const EARLY_SLACK_MS = 1000;

/** Each message is acked or retried on its own; one failure never retries the batch. */
export async function consumeBatch(batch: MessageBatch<DeliveryTask>, env: Env): Promise<void> {
  await Promise.all(
    batch.messages.map(async (msg) => {
      try {
        await deliverOne(env, msg.body.id);
        msg.ack();
      } catch (err) {
        console.error(`delivery of ${msg.body.id} failed inside the consumer; the queue will retry it`, err);
        msg.retry({ delaySeconds: 1 });
      }
    }),
  );
}

export async function deliverOne(env: Env, id: string): Promise<void> {
  const s = settings(env);
  const now = Date.now();
  const loaded = await loadForDelivery(env.DB, id);
  if (!loaded) return;
  const { message: m, signingKey } = loaded;
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
    await env.DB.batch(finishStatements(env.DB, m, "CANCELED", now, {}));
    await afterTerminal(env, m);
    return;
  }
  const leaseUntil = now + (m.timeoutMs ?? s.maxTimeoutMs) + s.leaseGraceMs;
  const [claim] = await env.DB.batch([
    env.DB.prepare(
      `UPDATE messages SET state = 'ACTIVE', lease_until = ?2 WHERE id = ?1 AND finished_at IS NULL
         AND cancel_requested = 0 AND held = 0 AND retried = ?3 AND (lease_until IS NULL OR lease_until < ?4)`,
    ).bind(m.id, leaseUntil, m.retried, now),
    env.DB.prepare(
      `INSERT INTO events (tenant_id, message_id, time, state) SELECT ?1, ?2, ?3, 'ACTIVE' WHERE changes() = 1`,
    ).bind(m.tenantId, m.id, now),
  ]);
  if (claim.meta.changes !== 1) return; // someone else claimed it first
  const result = await attempt(m, signingKey, s);
  await recordOutcome(env, s, m, result);
}

type Extra = { error?: string | null; responseStatus?: number | null };

/** Marks a message terminal with its log entry. */
function finishStatements(db: D1Database, m: StoredMessage, state: "DELIVERED" | "FAILED" | "CANCELED", now: number, e: Extra): D1PreparedStatement[] {
  return [
    db
      .prepare(`UPDATE messages SET state = ?2, finished_at = ?3, lease_until = NULL WHERE id = ?1`)
      .bind(m.id, state, now),
    insertEvent(db, { tenantId: m.tenantId, messageId: m.id, time: now, state, error: e.error, responseStatus: e.responseStatus }),
  ];
}

/** Writes the outcome of an attempt in one D1 batch, then hands the follow-up work (retry, callbacks) on. */
export async function recordOutcome(env: Env, s: Settings, m: StoredMessage, result: AttemptResult): Promise<void> {
  const db = env.DB;
  const now = Date.now();
  const stmts: D1PreparedStatement[] = [];
  const next: ScheduleItem[] = [];
  const success = result.status >= 200 && result.status < 300;
  const followUps: StoredMessage[] = [];
  let terminal = success;

  const wantsCallback = m.kind === "message" && m.callback !== null;

  if (success) {
    if (wantsCallback) followUps.push(callbackMessage(m, "callback", result, now));
    stmts.push(
      db.prepare(`UPDATE messages SET state = 'DELIVERED', finished_at = ?2, lease_until = NULL WHERE id = ?1`).bind(m.id, now),
      insertEvent(db, {
        tenantId: m.tenantId,
        messageId: m.id,
        time: now,
        state: "DELIVERED",
        responseStatus: result.status,
        responseHeaders: result.headers,
        responseBody: result.body,
      }),
    );
  } else {
    stmts.push(
      insertEvent(db, {
        tenantId: m.tenantId,
        messageId: m.id,
        time: now,
        state: "ERROR",
        error: result.error,
        responseStatus: result.status,
        responseHeaders: result.headers,
        responseBody: result.body,
      }),
    );
    const cancelled = await db.prepare("SELECT cancel_requested FROM messages WHERE id = ?1").bind(m.id).first<number>("cancel_requested");
    // Cancellation fires no callbacks (contract §5.1); every other failed attempt does.
    if (cancelled !== 1 && wantsCallback) followUps.push(callbackMessage(m, "callback", result, now));
    if (cancelled === 1) {
      terminal = true;
      stmts.push(...finishStatements(db, m, "CANCELED", now, { error: result.error }));
    } else if (m.retried < m.maxRetries && !result.nonRetryable) {
      const delay = nextRetryDelayMs({
        retried: m.retried,
        expr: m.retryDelayExpr ? compileRetryDelay(m.retryDelayExpr) : null,
        response: result.status === 0 ? null : mapToHeaders(result.headers),
        now,
        maxDelayMs: s.maxDelayMs,
      });
      const dueAt = now + delay;
      stmts.push(
        db
          .prepare(`UPDATE messages SET state = 'RETRY', retried = retried + 1, due_at = ?2, lease_until = NULL WHERE id = ?1`)
          .bind(m.id, dueAt),
        insertEvent(db, { tenantId: m.tenantId, messageId: m.id, time: now, state: "RETRY", nextDeliveryTime: dueAt }),
      );
      next.push({ id: m.id, dueAt });
    } else {
      terminal = true;
      const dlqId = newDlqId(now);
      const reason = result.nonRetryable
        ? "the destination answered 489 with Upstash-NonRetryable-Error: true"
        : `retries exhausted after ${m.retried + 1} attempt(s): ${result.error}`;
      stmts.push(
        ...finishStatements(db, m, "FAILED", now, { error: reason, responseStatus: result.status }),
        insertDlq(db, {
          dlqId,
          tenantId: m.tenantId,
          messageId: m.id,
          createdAt: now,
          responseStatus: result.status,
          responseHeaders: result.headers,
          responseBody: result.body,
          error: result.error,
        }),
      );
      if (m.kind === "message" && m.failureCallback) followUps.push(callbackMessage(m, "failure_callback", result, now, dlqId));
    }
  }
  for (const f of followUps) {
    // A queued message keeps its slot until its callbacks finish too (contract §5.7).
    if (m.queueName) f.extra = { ...f.extra, queuedParent: true };
    stmts.push(insertMessage(db, f), insertEvent(db, { tenantId: f.tenantId, messageId: f.id, time: now, state: "CREATED", nextDeliveryTime: f.notBefore || null }));
    next.push({ id: f.id, dueAt: f.dueAt });
  }
  await db.batch(stmts);
  // If this hand-off is lost (crash), the sweeper finds the due, unfinished rows and re-drives them.
  if (next.length) await dispatch(env, next, now, s.schedulerShards);
  if (terminal) await afterTerminal(env, m);
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
    const row = await env.DB.prepare(
      `SELECT p.tenant_id, p.queue_name, p.finished_at,
         (SELECT count(*) FROM messages c WHERE c.parent_id = p.id AND c.finished_at IS NULL) AS open_children
       FROM messages p WHERE p.id = ?1`,
    )
      .bind(sourceId)
      .first<{ tenant_id: string; queue_name: string | null; finished_at: number | null; open_children: number }>();
    if (row?.queue_name && row.finished_at !== null && row.open_children === 0) {
      work.push(gateStub(env, gateName("queue", row.tenant_id, row.queue_name)).release([sourceId]));
    }
  }
  await Promise.all(work);
}
