/**
 * A failed run, from its DLQ entry, runs again under a new run id: `restart` from its first payload, `resume` from
 * the step that failed (the new run's history is the old one's up to that step, and the failed step's message is
 * published again). The run's configuration (retries, flow control, failure callback, headers) carries over,
 * with the overrides given.
 */
import { base64ToBytes } from "../core/encoding";
import type { HeaderMap } from "../core/headers";
import { randomString } from "../core/ids";
import type { FlowControl } from "../core/spec";
import { objectConfig } from "../core/spec";
import type { StoredMessage } from "../core/types";
import { type RunConfig, type WorkflowRun, insertRunCopy } from "../db/workflow-runs";
import { publishMessage } from "../delivery/publish";
import type { Env } from "../env";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
const FEATURES = "LazyFetch,InitialBody,WF_DetectTrigger,WF_TriggerOnConfig";

export interface Overrides {
  retries?: number;
  flowControl?: FlowControl;
}

function flowValue(fc: FlowControl): string {
  return [fc.parallelism ? `parallelism=${fc.parallelism}` : "", fc.rate ? `rate=${fc.rate}` : "", fc.periodS ? `period=${fc.periodS}s` : ""].filter(Boolean).join(", ");
}

/** The run's configuration as the headers of a message that starts a run (what the SDK's trigger sends). */
function triggerHeaders(run: WorkflowRun, config: RunConfig, runId: string): Record<string, string> {
  const h: Record<string, string> = {
    "upstash-workflow-init": "true",
    "upstash-workflow-runid": runId,
    "upstash-workflow-url": run.url,
    "upstash-workflow-sdk-version": "1",
    "upstash-forward-upstash-workflow-sdk-version": "1",
    "upstash-feature-set": FEATURES,
  };
  if (config.contentType) h["content-type"] = config.contentType;
  if (config.retries !== null) h["upstash-retries"] = String(config.retries);
  if (config.retryDelay) h["upstash-retry-delay"] = config.retryDelay;
  if (config.flowControl) {
    h["upstash-flow-control-key"] = config.flowControl.key;
    h["upstash-flow-control-value"] = flowValue(config.flowControl);
  }
  if (config.labels.length) h["upstash-label"] = config.labels.join(",");
  for (const [name, values] of Object.entries(config.forward)) h[`upstash-forward-${name.toLowerCase()}`] = values[0];
  if (config.failureCallback) {
    h["upstash-failure-callback"] = config.failureCallback;
    const fc = config.failureCallbackConfig;
    if (fc) {
      if (fc.retries !== undefined) h["upstash-failure-callback-retries"] = String(fc.retries);
      if (fc.retryDelay) h["upstash-failure-callback-retry-delay"] = fc.retryDelay;
      if (fc.timeoutMs !== undefined) h["upstash-failure-callback-timeout"] = `${Math.ceil(fc.timeoutMs / 1000)}s`;
      if (fc.delayMs !== undefined) h["upstash-failure-callback-delay"] = `${Math.ceil(fc.delayMs / 1000)}s`;
      if (fc.method) h["upstash-failure-callback-method"] = fc.method;
      for (const [name, values] of Object.entries(fc.headers)) {
        const lower = name.toLowerCase();
        const key = lower.startsWith("upstash-workflow-") || lower === "upstash-feature-set" ? `upstash-failure-callback-${lower.slice("upstash-".length)}` : `upstash-failure-callback-forward-${lower}`;
        h[key] = lower === "upstash-workflow-runid" ? runId : values[0];
      }
    }
  }
  return h;
}

/** A stored message's headers as the configuration of the same message published again in run `runId`. */
function messageHeaders(m: StoredMessage, runId: string): Record<string, string> {
  const h: Record<string, string> = { "upstash-method": m.method };
  const headers: HeaderMap = m.headers;
  for (const [name, values] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower === "upstash-workflow-runid") h[lower] = runId;
    else if (lower.startsWith("upstash-workflow-") || lower === "upstash-feature-set" || lower === "content-type") h[lower] = values[0];
    else h[`upstash-forward-${lower}`] = values[0];
  }
  return h;
}

function withOverrides(config: RunConfig, o: Overrides, oldRunId: string, newRunId: string): RunConfig {
  const c: RunConfig = JSON.parse(JSON.stringify(config)) as RunConfig;
  if (o.retries !== undefined) c.retries = o.retries;
  if (o.flowControl) c.flowControl = o.flowControl;
  if (c.failureCallbackConfig) {
    for (const [name, values] of Object.entries(c.failureCallbackConfig.headers)) {
      if (name.toLowerCase() === "upstash-workflow-runid") c.failureCallbackConfig.headers[name] = values.map((v) => (v === oldRunId ? newRunId : v));
    }
  }
  return c;
}

export function newRunId(): string {
  return `wfr_${randomString(21, ALPHABET)}`;
}

/** Runs a failed run again: from the start (`restart`), or from the message that failed (`resume`). */
export async function rerun(env: Env, run: WorkflowRun, failed: StoredMessage, mode: "restart" | "resume", o: Overrides, now: number): Promise<{ workflowRunId: string; workflowCreatedAt: number }> {
  const runId = newRunId();
  const config = withOverrides(run.config, o, run.runId, runId);
  const at = run.history.findIndex((s) => s.m === failed.id);
  if (mode === "resume" && at > 0) {
    await insertRunCopy(env.DB, run, runId, config, run.history.slice(0, at), now).run();
    const cfg = messageHeaders(failed, runId);
    if (o.retries !== undefined) cfg["upstash-retries"] = String(o.retries);
    await publishMessage(env, { tenantId: run.tenantId, destination: failed.url, cfg: objectConfig(cfg), body: base64ToBytes(run.history[at].b), callerIp: null, queueName: null }, now);
    return { workflowRunId: runId, workflowCreatedAt: now };
  }
  const payload = run.history[0] ? base64ToBytes(run.history[0].b) : new Uint8Array(0);
  await publishMessage(env, { tenantId: run.tenantId, destination: run.url, cfg: objectConfig(triggerHeaders(run, config, runId)), body: payload, callerIp: null, queueName: null }, now);
  return { workflowRunId: runId, workflowCreatedAt: now };
}
