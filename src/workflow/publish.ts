/**
 * What a publish does for a message of a workflow run (one carrying `Upstash-Workflow-RunId`): the first message
 * (`Upstash-Workflow-Init: true`) starts the run and keeps its configuration; every later one is refused once the
 * run ended, takes the run's configuration where it sets none of its own, and is appended to the history in the
 * commit that stores it.
 */
import { ApiError } from "../core/errors";
import { type HeaderMap, addHeader } from "../core/headers";
import type { ConfigSource, MessageSpec } from "../core/spec";
import type { StoredMessage } from "../core/types";
import { utf8 } from "../core/encoding";
import { type RunConfig, appendStep, getRun, singleWorkflowHeaders, startRun, stepOf, workflowFacts } from "../db/workflow-runs";
import { putRunStep } from "../db/blobs";
import type { Env } from "../env";

/** The headers a run forwards to its endpoint on every call: the trigger's, without the protocol's own. */
function forwardedOf(headers: HeaderMap): HeaderMap {
  const out: HeaderMap = {};
  for (const [name, values] of Object.entries(headers)) {
    if (name.startsWith("Upstash-Workflow-") || name === "Upstash-Feature-Set" || name === "Content-Type") continue;
    out[name] = values.slice();
  }
  return out;
}

export interface WorkflowPublish {
  /** Statements to commit with the messages. */
  extra: D1PreparedStatement[];
  /** The run is already running: nothing is stored, and the answer says `deduplicated`. */
  deduplicated: boolean;
}

/**
 * Prepares the messages of one publish for their run, before they are stored (and before a large body goes to R2:
 * the history keeps the body itself). Changes the messages in place.
 */
export async function workflowPublish(
  env: Env,
  inlineMax: number,
  cfg: ConfigSource,
  spec: MessageSpec,
  messages: StoredMessage[],
  now: number,
  waiterTimeout?: { eventId: string },
): Promise<WorkflowPublish | null> {
  const facts = workflowFacts(spec.headers);
  if (!facts) return null;
  const db = env.DB;
  /** The history element of a message: its body inline, or in R2 above INLINE_BODY_MAX. */
  const element = async (msg: StoredMessage, callType: string, runId: string) =>
    stepOf(msg, callType, msg.body.byteLength > inlineMax ? await putRunStep(env, msg.tenantId, runId, msg.id, msg.body) : null);
  for (const m of messages) singleWorkflowHeaders(m.headers);
  const extra: D1PreparedStatement[] = [];
  const m = messages[0];
  if (messages.length !== 1) throw new ApiError(400, "a workflow message goes to one URL, not to a URL group");
  if (facts.init) {
    const existing = await getRun(db, m.tenantId, facts.runId);
    if (existing && existing.state === "RUN_STARTED") return { extra, deduplicated: true };
    let invoker: Record<string, unknown> | null = null;
    if (cfg.get("upstash-workflow-invoke")?.toLowerCase() === "true") {
      // context.invoke: the body wraps the child's payload with what the parent needs back when the child ends.
      const wrapper = parseJson(m.body);
      if (!wrapper) throw new ApiError(400, "an invoke (Upstash-Workflow-Invoke: true) must carry the SDK's JSON wrapper as its body");
      invoker = {
        workflowRunId: wrapper.workflowRunId,
        workflowUrl: wrapper.workflowUrl,
        workflowRunCreatedAt: wrapper.workflowRunCreatedAt,
        headers: wrapper.headers,
        step: wrapper.step,
      };
      m.body = utf8(typeof wrapper.body === "string" ? wrapper.body : "");
    }
    const config: RunConfig = {
      retries: cfg.get("upstash-retries") !== undefined ? spec.maxRetries : null,
      retryDelay: spec.retryDelayExpr,
      flowControl: spec.flowControl,
      failureCallback: spec.failureCallback,
      failureCallbackConfig: spec.failureCallbackConfig,
      forward: forwardedOf(m.headers),
      contentType: m.headers["Content-Type"]?.[0] ?? null,
      labels: spec.labels,
    };
    extra.push(startRun(db, m, facts.url ?? m.url, config, now, invoker, await element(m, "step", facts.runId)));
    return { extra, deduplicated: false };
  }
  const run = await getRun(db, m.tenantId, facts.runId);
  if (!run || run.state !== "RUN_STARTED") {
    throw new ApiError(400, `workflow run ${facts.runId} is not running (${run ? `it ended: ${run.state}` : "no such run"}); nothing was published`);
  }
  if (facts.callType === "step" && m.url === run.url) {
    const c = run.config;
    if (cfg.get("upstash-retries") === undefined && c.retries !== null) m.maxRetries = c.retries;
    if (m.retryDelayExpr === null) m.retryDelayExpr = c.retryDelay;
    if (m.flowControl === null) m.flowControl = c.flowControl;
    if (m.failureCallback === null && c.failureCallback) {
      m.failureCallback = c.failureCallback;
      m.failureCallbackConfig = c.failureCallbackConfig;
    }
    if (m.labels.length === 0) m.labels = c.labels.slice();
    for (const [name, values] of Object.entries(c.forward)) {
      if (m.headers[name] === undefined) for (const v of values) addHeader(m.headers, name, v);
    }
  }
  // A wait's timeout joins the history when it fires, and only if no event came first.
  if (waiterTimeout) m.extra.waiterEvent = waiterTimeout.eventId;
  else extra.push(appendStep(db, m.tenantId, facts.runId, await element(m, facts.callType, facts.runId)));
  return { extra, deduplicated: false };
}

function parseJson(bytes: Uint8Array): Record<string, unknown> | null {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
