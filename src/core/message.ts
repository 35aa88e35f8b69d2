/** Turning a parsed publish spec into a new stored message. */
import { newMessageId } from "./ids";
import type { MessageSpec } from "./spec";
import type { StoredMessage } from "./types";

export interface Origin {
  tenantId: string;
  url: string;
  body: Uint8Array;
  callerIp: string | null;
  topicName?: string | null;
  endpointName?: string | null;
  queueName?: string | null;
  scheduleId?: string | null;
  /** The tenant's D1 shard, which the message id names. */
  shard?: number;
}

export function newMessage(spec: MessageSpec, origin: Origin, now: number): StoredMessage {
  return {
    id: newMessageId(origin.shard ?? 0, now),
    tenantId: origin.tenantId,
    kind: "message",
    parentId: null,
    url: origin.url,
    method: spec.method,
    headers: spec.headers,
    body: origin.body,
    bodyRef: null,
    maxRetries: spec.maxRetries,
    retryDelayExpr: spec.retryDelayExpr,
    timeoutMs: spec.timeoutMs,
    notBefore: spec.notBefore,
    createdAt: now,
    callback: spec.callback,
    failureCallback: spec.failureCallback,
    callbackConfig: spec.callbackConfig,
    failureCallbackConfig: spec.failureCallbackConfig,
    topicName: origin.topicName ?? null,
    endpointName: origin.endpointName ?? null,
    queueName: origin.queueName ?? null,
    scheduleId: origin.scheduleId ?? null,
    callerIp: origin.callerIp,
    labels: spec.labels,
    flowControl: spec.flowControl,
    extra: {},
    state: "CREATED",
    retried: 0,
    dueAt: Math.max(spec.notBefore, now),
    leaseUntil: null,
    cancelRequested: false,
    finishedAt: null,
    held: false,
    redacted: null,
  };
}
