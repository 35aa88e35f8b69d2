/** Domain types shared by storage, delivery and the API views. */
import type { HeaderMap } from "./headers";
import type { CallbackConfig, FlowControl } from "./spec";

export type MessageKind = "message" | "callback" | "failure_callback";

export type MessageState =
  | "CREATED"
  | "ACTIVE"
  | "RETRY"
  | "ERROR"
  | "DELIVERED"
  | "FAILED"
  | "CANCEL_REQUESTED"
  | "CANCELED";

export const TERMINAL_STATES: readonly MessageState[] = ["DELIVERED", "FAILED", "CANCELED"];

export interface StoredMessage {
  id: string;
  tenantId: string;
  kind: MessageKind;
  parentId: string | null;
  url: string;
  method: string;
  headers: HeaderMap;
  /** The body; empty until loaded when it lives in R2 (`bodyRef`). */
  /** Set in list pages when only the first part of an R2 body was read: its whole size. */
  bodyTotal?: number;
  body: Uint8Array;
  /** Key of the body in the BODIES bucket when it is too large for the row (src/db/blobs.ts). */
  bodyRef: string | null;
  maxRetries: number;
  retryDelayExpr: string | null;
  timeoutMs: number | null;
  notBefore: number;
  createdAt: number;
  callback: string | null;
  failureCallback: string | null;
  callbackConfig: CallbackConfig | null;
  failureCallbackConfig: CallbackConfig | null;
  topicName: string | null;
  endpointName: string | null;
  queueName: string | null;
  scheduleId: string | null;
  callerIp: string | null;
  labels: string[];
  flowControl: FlowControl | null;
  extra: Record<string, unknown>;
  state: MessageState;
  retried: number;
  dueAt: number;
  leaseUntil: number | null;
  cancelRequested: boolean;
  finishedAt: number | null;
  /** Waiting in a queue or flow-control gate: not deliverable until the gate admits it. */
  held: boolean;
  /** What read paths show instead of redacted originals (delivery always uses the originals). */
  redacted: Redacted | null;
  /** Bytes of the row's log (its JSON), when the row was read with it in mind (a claim). */
  logBytes?: number;
}

export interface Redacted {
  body?: string;
  headers?: HeaderMap;
}

/** What one HTTP attempt produced. status 0 means no response (error says why). */
export interface AttemptResult {
  status: number;
  headers: HeaderMap;
  body: Uint8Array;
  bodyTruncated: boolean;
  error: string | null;
  nonRetryable: boolean;
  /** The attempt was cut at the caller's time budget, before its own timeout: not an outcome to record. */
  outOfBudget?: boolean;
}

export interface LogEvent {
  /** Position in its message's log. */
  index: number;
  tenantId: string;
  messageId: string;
  time: number;
  state: MessageState;
  error: string | null;
  nextDeliveryTime: number | null;
  responseStatus: number | null;
  responseHeaders: HeaderMap | null;
  responseBody: Uint8Array | null;
  /** Key of the response body in the BODIES bucket, when it is too large for the row. */
  responseBodyRef: string | null;
  /** Set in list pages when only the first part of an R2 response body was read: its whole size. */
  responseBodyTotal?: number;
}

export interface DlqEntry {
  seq: number;
  dlqId: string;
  tenantId: string;
  messageId: string;
  createdAt: number;
  responseStatus: number;
  responseHeaders: HeaderMap;
  responseBody: Uint8Array;
  /** Key of the response body in the BODIES bucket, when it is too large for the row. */
  responseBodyRef: string | null;
  /** Set in list pages when only the first part of an R2 response body was read: its whole size. */
  responseBodyTotal?: number;
  error: string | null;
}

/** How the failure callback of a DLQ'd message went (the Workflow SDK's `failureCallbackInfo`). */
export interface FailureCallbackInfo {
  state: "CALLBACK_INPROGRESS" | "CALLBACK_SUCCESS" | "CALLBACK_FAIL" | "CALLBACK_CANCELED";
  responseStatus?: number;
  responseBody?: string;
  responseHeaders?: HeaderMap;
}

/** What the Workflow SDK reads on a DLQ entry of a run besides the message: when the run started, and its failure callback. */
export interface RunFacts {
  createdAt: Map<string, number>;
  callbacks: Map<string, FailureCallbackInfo>;
}

