/** The JSON shapes of the API (contract §2.4–§2.6), built from domain objects. */
import { bytesToBase64, utf8OrNull } from "./encoding";
import { DEFAULT_PERIOD_S, type FlowControl } from "./spec";
import type { DlqEntry, LogEvent, RunFacts, StoredMessage } from "./types";

type Json = Record<string, unknown>;

function setIf(o: Json, key: string, value: unknown): void {
  if (value !== null && value !== undefined && value !== "") o[key] = value;
}

function bodyFields(o: Json, bytes: Uint8Array, textKey: string, b64Key: string): void {
  if (bytes.length === 0) return;
  const text = utf8OrNull(bytes);
  if (text !== null) o[textKey] = text;
  else o[b64Key] = bytesToBase64(bytes);
}

/**
 * A list page carries at most the first MiB of a large body (src/db/pages.ts): it then says so, with the whole size.
 * The whole body is in `GET /v2/messages/{id}` (pending messages) and `GET /v2/dlq/{dlqId}`.
 */
function truncatedFields(o: Json, key: string, total: number | undefined): void {
  if (total === undefined) return;
  o[`${key}Truncated`] = true;
  o[`${key}Size`] = total;
}

/** The `Message` object. */
export function messageView(m: StoredMessage): Json {
  const o: Json = { messageId: m.id, url: m.url };
  setIf(o, "topicName", m.topicName);
  setIf(o, "endpointName", m.endpointName);
  o.method = m.method;
  o.header = m.redacted?.headers ?? m.headers;
  if (m.redacted?.body !== undefined) o.body = m.redacted.body;
  else {
    bodyFields(o, m.body, "body", "bodyBase64");
    truncatedFields(o, "body", m.bodyTotal);
  }
  o.maxRetries = m.maxRetries;
  setIf(o, "retryDelayExpression", m.retryDelayExpr);
  o.notBefore = m.notBefore || m.createdAt;
  o.createdAt = m.createdAt;
  setIf(o, "callback", m.callback);
  setIf(o, "failureCallback", m.failureCallback);
  setIf(o, "queueName", m.queueName);
  setIf(o, "scheduleId", m.scheduleId);
  if (m.callerIp) {
    o.callerIP = m.callerIp;
    o.callerIp = m.callerIp;
  }
  if (m.labels.length) {
    o.label = m.labels[0];
    o.labels = m.labels;
  }
  flowControlFields(o, m.flowControl);
  return o;
}

/**
 * The flat flow-control fields of a message, schedule or log entry. `period` is always there, with its default of
 * 1 second when the publisher set none (as hosted reports it); `parallelism` and `rate` only when set.
 */
export function flowControlFields(o: Json, fc: FlowControl | null | undefined): void {
  if (!fc) return;
  o.flowControlKey = fc.key;
  setIf(o, "parallelism", fc.parallelism);
  setIf(o, "rate", fc.rate);
  o.period = fc.periodS ?? DEFAULT_PERIOD_S;
}

/** The `DLQMessage` object: the message plus the final response. */
export function dlqView(entry: DlqEntry, m: StoredMessage, facts?: RunFacts): Json {
  const o = messageView(m);
  o.dlqId = entry.dlqId;
  o.responseStatus = entry.responseStatus;
  o.responseHeader = entry.responseHeaders;
  bodyFields(o, entry.responseBody, "responseBody", "responseBodyBase64");
  truncatedFields(o, "responseBody", entry.responseBodyTotal);
  setIf(o, "error", entry.error);
  // An entry of a workflow run (the Workflow SDK's DLQ list reads these).
  const runId = m.headers["Upstash-Workflow-Runid"]?.[0];
  if (runId) {
    o.workflowRunId = runId;
    o.workflowUrl = m.headers["Upstash-Workflow-Url"]?.[0] ?? m.url;
    const created = facts?.createdAt.get(runId);
    if (created !== undefined) o.workflowCreatedAt = created;
    const callback = facts?.callbacks.get(m.id);
    if (callback) o.failureCallbackInfo = callback;
  }
  return o;
}

/** One `LogEntry`. */
export function logView(e: LogEvent, m: StoredMessage, maxTimeoutMs: number): Json {
  const o: Json = { time: e.time, messageId: e.messageId, state: e.state };
  setIf(o, "error", e.error);
  setIf(o, "nextDeliveryTime", e.nextDeliveryTime);
  o.url = m.url;
  setIf(o, "topicName", m.topicName);
  setIf(o, "endpointName", m.endpointName);
  setIf(o, "scheduleId", m.scheduleId);
  setIf(o, "queueName", m.queueName);
  o.method = m.method;
  o.header = m.redacted?.headers ?? m.headers;
  o.body = m.redacted?.body !== undefined ? btoa(m.redacted.body) : bytesToBase64(m.body);
  if (m.redacted?.body === undefined) truncatedFields(o, "body", m.bodyTotal);
  if (e.responseStatus !== null) o.responseStatus = e.responseStatus;
  if (e.responseHeaders) {
    o.responseHeaders = e.responseHeaders;
    o.responseHeader = e.responseHeaders;
  }
  if (e.responseBody && e.responseBody.length) o.responseBody = bytesToBase64(e.responseBody);
  truncatedFields(o, "responseBody", e.responseBodyTotal);
  o.timeout = m.timeoutMs ?? maxTimeoutMs;
  o.maxRetries = m.maxRetries;
  if (m.retryDelayExpr) {
    o.retryDelayExpression = m.retryDelayExpr;
    o.retryDelayExpr = m.retryDelayExpr;
  }
  setIf(o, "callback", m.callback);
  setIf(o, "failureCallback", m.failureCallback);
  if (m.callbackConfig && Object.keys(m.callbackConfig.headers).length) o.callbackHeaders = m.callbackConfig.headers;
  if (m.failureCallbackConfig && Object.keys(m.failureCallbackConfig.headers).length) {
    o.failureCallbackHeaders = m.failureCallbackConfig.headers;
  }
  if (m.labels.length) {
    o.label = m.labels[0];
    o.labels = m.labels;
  }
  flowControlFields(o, m.flowControl);
  if (m.callerIp) o.callerIp = m.callerIp;
  return o;
}
