/**
 * A workflow step's call to its endpoint carries the run's history instead of the message's own body: a JSON array of
 * `{messageId, body (base64), callType}` from the run's first message up to and including this one. Callbacks and
 * failure callbacks keep their own JSON body; every call gets the run id as one header value.
 */
import { bytesToBase64, utf8 } from "../core/encoding";
import { loadBlob } from "../db/blobs";
import type { StoredMessage } from "../core/types";
import { appendStep, getRun, historyBytes, historyUpTo, singleWorkflowHeaders, stepOf, workflowFacts } from "../db/workflow-runs";
import type { Env } from "../env";
import { rawSteps } from "./history";
import { takeWaiterForTimeout } from "../db/workflow-waiters";

/** The largest history sent in the body of a call; a larger one is fetched by the SDK (feature LazyFetch). */
export const LAZY_FETCH_OVER = 1 << 20;

/** What a failure callback of a run's message needs from the run (kept on the in-memory message only). */
export interface RunContext {
  initialBody: string;
  createdAt: number;
}

/**
 * The message as its attempt sends it. For a step whose run ended (or is unknown) the body is empty: the SDK then
 * asks `GET /v2/workflows/runs/{id}`, learns the run is over, and answers 200 without running anything.
 */
export async function workflowDelivery(env: Env, m: StoredMessage): Promise<StoredMessage | null> {
  const db = env.DB;
  const facts = workflowFacts(m.headers);
  if (!facts) return m;
  const headers = { ...m.headers };
  singleWorkflowHeaders(headers);
  if (m.kind !== "message" || facts.callType !== "step") return { ...m, headers };
  let run = await getRun(db, m.tenantId, facts.runId);
  const waiterEvent = typeof m.extra.waiterEvent === "string" ? m.extra.waiterEvent : null;
  if (run && waiterEvent !== null && !run.history.some((s) => s.m === m.id)) {
    // A wait's timeout, firing: it goes on only if the waiter is still there (no event came), and then joins the
    // history (a retry of it finds itself there).
    if (!(await takeWaiterForTimeout(db, m.tenantId, waiterEvent, facts.runId))) return null;
    await appendStep(db, m.tenantId, facts.runId, stepOf(m, facts.callType)).run();
    run = await getRun(db, m.tenantId, facts.runId);
  }
  if (!run || run.state !== "RUN_STARTED") return { ...m, headers, body: new Uint8Array(0) };
  headers["Upstash-Workflow-Createdat"] = [String(run.createdAt)];
  // Kept for the failure callback this attempt may produce (its body names the run and its first payload).
  const first = run.history[0];
  const initialBody = first?.r ? (m.failureCallback ? bytesToBase64(await loadBlob(env, first.r)) : "") : (first?.b ?? "");
  m.extra.workflow = { initialBody, createdAt: run.createdAt } satisfies RunContext;
  const steps = historyUpTo(run, m.id);
  // A history above LAZY_FETCH_OVER goes by lazy fetch when the SDK offers it: an empty body, and the SDK asks
  // GET /v2/workflows/runs/{id} for the history (src/routes/workflows.ts).
  const lazy = historyBytes(steps) > LAZY_FETCH_OVER && (headers["Upstash-Feature-Set"]?.[0] ?? "").split(",").map((f) => f.trim()).includes("LazyFetch");
  if (lazy) return { ...m, headers, body: new Uint8Array(0) };
  return { ...m, headers, body: utf8(JSON.stringify(await rawSteps(env, steps))) };
}
