/** Callback and failure-callback messages (contract §5): their JSON body and their configuration. */
import { bytesToBase64, utf8 } from "./encoding";
import { newMessageId, shardOfId } from "./ids";
import type { AttemptResult, MessageKind, StoredMessage } from "./types";

/** The JSON body QStash posts to a callback URL after an attempt of `source`. */
export function callbackBody(source: StoredMessage, result: AttemptResult, dlqId?: string): Record<string, unknown> {
  const o: Record<string, unknown> = {
    status: result.status,
    header: result.headers,
    body: bytesToBase64(result.body),
    retried: source.retried,
    maxRetries: source.maxRetries,
    sourceMessageId: source.id,
  };
  if (source.topicName) o.topicName = source.topicName;
  if (source.endpointName) o.endpointName = source.endpointName;
  o.url = source.url;
  o.method = source.method;
  o.sourceHeader = source.redacted?.headers ?? source.headers;
  o.sourceBody = source.redacted?.body !== undefined ? btoa(source.redacted.body) : bytesToBase64(source.body);
  o.notBefore = source.notBefore || source.createdAt;
  o.createdAt = source.createdAt;
  if (source.scheduleId) o.scheduleId = source.scheduleId;
  if (source.callerIp) o.callerIP = source.callerIp;
  if (result.status === 0 && result.error) o.error = result.error;
  // Our extension: says the response body was cut at the maximum message size.
  if (result.bodyTruncated) o.bodyTruncated = true;
  if (dlqId !== undefined) o.dlqId = dlqId;
  // A workflow run's message (src/workflow/deliver.ts kept its run's facts): the failure callback names the run and
  // carries the run's first payload as the source body, which the SDK hands to the failure function.
  const wf = source.extra.workflow as { initialBody?: string; createdAt?: number } | undefined;
  const runId = source.headers["Upstash-Workflow-Runid"]?.[0];
  if (wf && runId) {
    o.sourceBody = wf.initialBody ?? "";
    o.workflowRunId = runId;
    o.workflowCreatedAt = wf.createdAt;
  }
  return o;
}

/** The new message that carries a callback; it never has callbacks of its own. */
export function callbackMessage(
  source: StoredMessage,
  kind: Exclude<MessageKind, "message">,
  result: AttemptResult,
  now: number,
  dlqId?: string,
): StoredMessage {
  const url = kind === "callback" ? source.callback! : source.failureCallback!;
  const cfg = (kind === "callback" ? source.callbackConfig : source.failureCallbackConfig) ?? { headers: {} };
  const notBefore = cfg.delayMs ? now + cfg.delayMs : 0;
  return {
    id: newMessageId(shardOfId(source.id), now),
    tenantId: source.tenantId,
    kind,
    parentId: source.id,
    url,
    method: cfg.method ?? "POST",
    headers: { "Content-Type": ["application/json"], ...cfg.headers },
    body: utf8(JSON.stringify(callbackBody(source, result, dlqId))),
    bodyRef: null,
    maxRetries: cfg.retries ?? source.maxRetries,
    retryDelayExpr: cfg.retryDelay ?? null,
    timeoutMs: cfg.timeoutMs ?? null,
    notBefore,
    createdAt: now,
    callback: null,
    failureCallback: null,
    callbackConfig: null,
    failureCallbackConfig: null,
    topicName: null,
    endpointName: null,
    queueName: null,
    scheduleId: null,
    callerIp: null,
    labels: [],
    flowControl: null,
    extra: dlqId !== undefined ? { dlqId } : {},
    state: "CREATED",
    retried: 0,
    dueAt: notBefore || now,
    leaseUntil: null,
    cancelRequested: false,
    finishedAt: null,
    held: false,
    redacted: null,
  };
}
