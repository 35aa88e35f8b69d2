/**
 * How a workflow run ends, whoever ends it (the SDK's last call, a cancel, a step that failed for good): what it
 * still had pending is cancelled, its waits are dropped, and the run that invoked it, if any, hears how it ended.
 */
import { settings } from "../config";
import { base64ToBytes, utf8OrNull } from "../core/encoding";
import { objectConfig } from "../core/spec";
import { cancelMessages, selectPendingIds } from "../db/messages";
import { type WorkflowRun, endRun } from "../db/workflow-runs";
import { dropForRun, runWaiters } from "../db/workflow-waiters";
import { unschedule } from "../delivery/dispatch";
import { publishMessage } from "../delivery/publish";
import { releaseCancelled } from "../delivery/release";
import type { Env } from "../env";

/** Header values as publish headers: one value each, names lower-cased (the SDK sends `RunId` and `Runid`). */
export function publishHeaders(map: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!map || typeof map !== "object") return out;
  for (const [name, value] of Object.entries(map as Record<string, unknown>)) {
    const v = Array.isArray(value) ? value[0] : value;
    if (typeof v === "string" && out[name.toLowerCase()] === undefined) out[name.toLowerCase()] = v;
  }
  return out;
}

/** A history element's step JSON, or null. */
export function decodeStep(b64: string): Record<string, unknown> | null {
  try {
    const text = utf8OrNull(base64ToBytes(b64));
    const v = text === null ? null : (JSON.parse(text) as unknown);
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Cancels what a run still has pending (its messages not yet delivered). */
async function cancelPending(env: Env, run: WorkflowRun, now: number): Promise<void> {
  const ids = run.history.map((s) => s.m);
  if (!ids.length) return;
  const pending = await selectPendingIds(env.DB, run.tenantId, { sql: "m.id IN (SELECT value FROM json_each(?1))", params: [JSON.stringify(ids)] }, ids.length);
  if (!pending.length) return;
  await cancelMessages(env.DB, run.tenantId, pending.map((p) => p.id), now);
  const delayed = pending.filter((p) => p.dueAt > now).map((p) => p.id);
  if (delayed.length) await unschedule(env, delayed, settings(env).schedulerShards);
  await releaseCancelled(env, pending.map((p) => p.id));
}

/**
 * A run started by context.invoke tells its parent how it ended: a step message of the parent's run, published to
 * the parent's endpoint with the headers the parent gave.
 */
async function answerInvoker(env: Env, run: WorkflowRun, outcome: { body: string | null; isFailed: boolean; isCanceled: boolean }, now: number): Promise<void> {
  const inv = run.invoker;
  if (!inv || typeof inv.workflowUrl !== "string") return;
  const headers = publishHeaders(inv.headers);
  const out = JSON.stringify({ ...(outcome.body !== null ? { body: outcome.body } : {}), isFailed: outcome.isFailed, isCanceled: outcome.isCanceled });
  const body = new TextEncoder().encode(JSON.stringify({ ...((inv.step ?? {}) as Record<string, unknown>), out }));
  try {
    await publishMessage(env, { tenantId: run.tenantId, destination: inv.workflowUrl, cfg: objectConfig(headers), body, callerIp: null, queueName: null }, now);
  } catch (err) {
    console.error(`telling the invoking run ${String(inv.workflowRunId)} that ${run.runId} ended failed`, err);
  }
}

/** Cancels the timeout messages of a run's waits and forgets its waits and kept events. */
async function dropWaits(env: Env, run: WorkflowRun, now: number): Promise<void> {
  const timeouts: string[] = [];
  for (const w of await runWaiters(env.DB, run.tenantId, run.runId)) if (w.timeoutMessageId) timeouts.push(w.timeoutMessageId);
  await env.DB.batch(dropForRun(env.DB, run.tenantId, run.runId));
  if (timeouts.length) {
    await cancelMessages(env.DB, run.tenantId, timeouts, now);
    await unschedule(env, timeouts, settings(env).schedulerShards);
  }
}

/** Ends a run, at most once; the invoking run, if any, hears of it. */
export async function finishRun(env: Env, run: WorkflowRun, state: "RUN_SUCCESS" | "RUN_FAILED" | "RUN_CANCELED", now: number, response: string | null, dlqId: string | null = null): Promise<boolean> {
  const ended = await endRun(env.DB, run.tenantId, run.runId, state, now, { response, dlqId });
  if (!ended) return false;
  await afterRunEnded(env, run, state, now, response);
  return true;
}

/** What follows the end of a run (its state is already written). */
export async function afterRunEnded(env: Env, run: WorkflowRun, state: "RUN_SUCCESS" | "RUN_FAILED" | "RUN_CANCELED", now: number, response: string | null): Promise<void> {
  if (state !== "RUN_SUCCESS") await cancelPending(env, run, now);
  await dropWaits(env, run, now);
  await answerInvoker(env, run, { body: state === "RUN_SUCCESS" ? response : null, isFailed: state === "RUN_FAILED", isCanceled: state === "RUN_CANCELED" }, now);
}

