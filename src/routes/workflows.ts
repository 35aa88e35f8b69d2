/**
 * /v2/workflows: the server side of Upstash Workflow (docs/workflows.md). Ending a run (the SDK's last call, and
 * context.cancel), cancelling runs, the run history for the SDK's lazy fetch, and the runs with their steps (logs).
 */
import { type Context, Hono } from "hono";
import type { AppEnv } from "../app";
import { settings } from "../config";
import { base64ToBytes, utf8OrNull } from "../core/encoding";
import { badRequest } from "../core/errors";
import { objectConfig } from "../core/spec";
import { cancelMessages } from "../db/messages";
import { unschedule } from "../delivery/dispatch";
import { publishMessage } from "../delivery/publish";
import type { Env } from "../env";
import { type PendingStep, type RunFilter, type WorkflowRun, getRun, listRuns, pendingSteps } from "../db/workflow-runs";
import { entriesOf } from "../db/logs";
import { rawSteps } from "../workflow/history";
import { decodeStep, finishRun, publishHeaders } from "../workflow/lifecycle";
import { loadBlob } from "../db/blobs";
import { callbackMessage } from "../core/callback";
import { acceptMessages } from "../delivery/accept";
import { DEV_TENANTS } from "../db/tenants";
import { shardEnv, tenantShard } from "../db/shards";
import { type Overrides, rerun } from "../workflow/restart";
import { type DlqItem, type FailureCallback, deleteDlq, failureCallbacks, getDlq, getDlqs, listDlq, runFacts } from "../db/dlq";
import { parseFilters } from "../core/filters";
import { dlqView } from "../core/views";
import { parseFlowControl, parseRetries } from "../core/spec";
import { methodNotAllowed, queryOf, readCapped, readJson } from "./common";
import { bytesToBase64, utf8 } from "../core/encoding";
import { parseDuration } from "../core/duration";
import { addWaiter, keepEvent, listWaiters, takeEvent, takeWaiters, type Waiter } from "../db/workflow-waiters";

export const workflows = new Hono<AppEnv>();

/** The SDK's last call (`?cancel=false`, the run's result as the body) and context.cancel (`?cancel=true`). */
workflows.delete("/workflows/runs/:id", async (c) => {
  const run = await getRun(c.env.DB, c.get("tenant").id, c.req.param("id"));
  if (!run) return c.json({ error: `workflow run ${c.req.param("id")} not found` }, 404);
  const cancel = c.req.query("cancel") !== "false";
  const body = await readCapped(c.req.raw, 1 << 20, () => badRequest("a run's result may be at most 1 MiB"));
  const response = cancel ? null : body.length ? (utf8OrNull(body) ?? null) : null;
  // Ending a run that already ended answers 200 too: the SDK retries its last call until it gets a 2xx.
  await finishRun(c.env, run, cancel ? "RUN_CANCELED" : "RUN_SUCCESS", Date.now(), response);
  return c.json({});
});

/** Cancels runs by id, by URL (a prefix, or exact with workflowUrlExactMatch=true), by label, or all. */
workflows.delete("/workflows/runs", async (c) => {
  const q = queryOf(c);
  const f: RunFilter = { state: "RUN_STARTED" };
  const ids = q.getAll("workflowRunIds").flatMap((v) => v.split(",")).filter(Boolean);
  if (ids.length) f.runIds = ids;
  const url = q.get("workflowUrl");
  if (url) {
    f.url = url;
    f.urlExact = q.get("workflowUrlExactMatch") === "true";
  }
  if (q.get("label")) f.label = q.get("label")!;
  const count = Math.min(Number(q.get("count") ?? "100") || 100, 1000);
  const { runs } = await listRuns(c.env.DB, c.get("tenant").id, f, count, null);
  const now = Date.now();
  let cancelled = 0;
  for (const run of runs) if (await finishRun(c.env, run, "RUN_CANCELED", now, null)) cancelled++;
  return c.json({ cancelled });
});

/** The run's history, for the SDK's lazy fetch; 404 once the run ended (the SDK then stops). */
workflows.get("/workflows/runs/:id", async (c) => {
  const run = await getRun(c.env.DB, c.get("tenant").id, c.req.param("id"));
  if (!run || run.state !== "RUN_STARTED") return c.json({ error: `workflow run ${c.req.param("id")} is not running` }, 404);
  return c.json(await rawSteps(c.env, run.history));
});

interface Step {
  stepId?: number;
  stepName?: string;
  stepType?: string;
  out?: unknown;
  concurrent?: number;
  targetStep?: number;
  sleepFor?: number;
  sleepUntil?: number;
  [k: string]: unknown;
}


/** A run as `client.logs` shows it: state, times, result, and its steps in groups. */
function runView(run: WorkflowRun, failed: DlqItem | null = null, pending: PendingStep[] = [], callback: FailureCallback | null = null): Record<string, unknown> {
  const groups: { type: string; steps: Record<string, unknown>[] }[] = [];
  const [init, ...rest] = run.history;
  if (init) {
    groups.push({
      type: "sequential",
      steps: [{ stepId: 0, stepName: "init", stepType: "Initial", callType: "step", messageId: init.m, out: utf8OrNull(base64ToBytes(init.b)) ?? init.b, concurrent: 1, state: "STEP_SUCCESS", createdAt: run.createdAt }],
    });
  }
  let parallel: { type: string; steps: Record<string, unknown>[] } | null = null;
  for (const s of rest) {
    if (s.c !== "step") continue;
    const step = decodeStep(s.b) as Step | null;
    if (!step || !step.stepId) continue; // a parallel plan (stepId 0) is not a result
    const view: Record<string, unknown> = { ...step, callType: s.c, messageId: s.m, state: "STEP_SUCCESS", concurrent: step.concurrent ?? 1 };
    if ((step.concurrent ?? 1) > 1) {
      if (!parallel || parallel.steps.length >= (step.concurrent ?? 1)) {
        parallel = { type: "parallel", steps: [] };
        groups.push(parallel);
      }
      parallel.steps.push(view);
    } else {
      parallel = null;
      groups.push({ type: "sequential", steps: [view] });
    }
  }
  const o: Record<string, unknown> = {
    workflowRunId: run.runId,
    workflowUrl: run.url,
    workflowState: run.state,
    workflowRunCreatedAt: run.createdAt,
  };
  if (run.completedAt !== null) o.workflowRunCompletedAt = run.completedAt;
  if (run.response !== null) o.workflowRunResponse = run.response;
  if (run.invoker) o.invoker = { workflowRunId: run.invoker.workflowRunId, workflowUrl: run.invoker.workflowUrl, workflowRunCreatedAt: run.invoker.workflowRunCreatedAt };
  if (run.dlqId) o.dlqId = run.dlqId;
  if (run.config.labels.length) {
    o.label = run.config.labels[0];
    o.labels = run.config.labels;
  }
  if (run.config.flowControl) o.flowControlKey = run.config.flowControl.key;
  if (failed) {
    // The step that failed for good, with its last answer (the SDK's error JSON names the error and its stack).
    const e = failed.entry;
    groups.push({
      type: "next",
      steps: [
        {
          messageId: failed.message.id,
          state: "STEP_FAILED",
          retries: failed.message.maxRetries,
          errors: [{ error: e.error ?? `HTTP ${e.responseStatus}`, status: e.responseStatus, headers: e.responseHeaders, body: utf8OrNull(e.responseBody) ?? "", time: e.createdAt }],
        },
      ],
    });
  }
  if (failed && callback) {
    // The failure function's message: how it went, with the failed step's answer it was given.
    const e = failed.entry;
    const f: Record<string, unknown> = {
      messageId: callback.messageId,
      url: callback.url,
      state: callback.info.state,
      failHeaders: e.responseHeaders,
      failStatus: e.responseStatus,
      failResponse: utf8OrNull(e.responseBody) ?? "",
      dlqId: e.dlqId,
    };
    if (callback.info.responseStatus !== undefined) f.responseStatus = callback.info.responseStatus;
    if (callback.info.responseHeaders) f.responseHeaders = callback.info.responseHeaders;
    if (callback.info.responseBody !== undefined) f.responseBody = callback.info.responseBody;
    o.failureFunction = f;
  }
  if (pending.length) groups.push({ type: "next", steps: pending.map((p) => pendingView(run, p)) });
  o.steps = groups;
  return o;
}

/**
 * A step of a running run that is not done: under way (or waiting for its time) is STEP_PROGRESS, a failed attempt
 * waiting for its retry is STEP_RETRY, with the errors of its attempts so far.
 */
function pendingView(run: WorkflowRun, p: PendingStep): Record<string, unknown> {
  const errors = entriesOf({ id: p.id, tenantId: run.tenantId }, p.log)
    .filter((e) => e.error !== null || (e.responseStatus !== null && e.responseStatus >= 300))
    .map((e) => ({ error: e.error ?? `HTTP ${e.responseStatus}`, status: e.responseStatus ?? 0, headers: e.responseHeaders ?? {}, body: e.responseBody ? (utf8OrNull(e.responseBody) ?? "") : "", time: e.time }));
  const view: Record<string, unknown> = { messageId: p.id, state: p.state === "RETRY" ? "STEP_RETRY" : "STEP_PROGRESS", retries: p.maxRetries };
  if (p.retryDelay) view.retryDelay = p.retryDelay;
  // The SDK names the failing step in a response header of a failed attempt.
  for (const e of errors) {
    const name = Object.entries(e.headers).find(([k]) => k.toLowerCase() === "upstash-error-step-name")?.[1][0];
    if (name) view.stepName = name;
  }
  if (errors.length) view.errors = errors;
  return view;
}

async function runsPage(c: Context<AppEnv>): Promise<Response> {
  const q = queryOf(c);
  const f: RunFilter = {};
  const id = q.get("workflowRunId");
  if (id) f.runIds = [id];
  const state = q.get("state");
  if (state) {
    if (!["RUN_STARTED", "RUN_SUCCESS", "RUN_FAILED", "RUN_CANCELED"].includes(state)) {
      throw badRequest(`state: "${state}" must be RUN_STARTED, RUN_SUCCESS, RUN_FAILED or RUN_CANCELED`);
    }
    f.state = state;
  }
  const url = q.get("workflowUrl");
  if (url) {
    f.url = url;
    f.urlExact = true;
  }
  if (q.get("label")) f.label = q.get("label")!;
  for (const [key, field] of [["workflowCreatedAt", "createdAt"], ["fromDate", "fromDate"], ["toDate", "toDate"]] as const) {
    const v = q.get(key);
    if (v === null) continue;
    if (!/^\d+$/.test(v)) throw badRequest(`${key}: "${v}" must be a time in Unix milliseconds`);
    f[field] = Number(v);
  }
  const countRaw = q.get("count");
  if (countRaw !== null && (!/^\d+$/.test(countRaw) || Number(countRaw) < 1)) throw badRequest(`count: "${countRaw}" must be a positive integer`);
  const count = Math.min(Number(countRaw ?? "10"), 100);
  const page = await listRuns(c.env.DB, c.get("tenant").id, f, count, q.get("cursor"));
  const [entries, pending] = await Promise.all([
    getDlqs(c.env.DB, c.get("tenant").id, page.runs.flatMap((r) => (r.dlqId ? [r.dlqId] : []))),
    pendingSteps(c.env.DB, c.get("tenant").id, page.runs),
  ]);
  const failed = page.runs.map((r) => (r.dlqId ? (entries.get(r.dlqId) ?? null) : null));
  const failedIds = failed.filter((f): f is DlqItem => f !== null).map((f) => f.message.id);
  const callbacks = await failureCallbacks(c.env.DB, c.get("tenant").id, failedIds);
  const runs = page.runs.map((r, i) => runView(r, failed[i], pending.get(r.runId) ?? [], failed[i] ? (callbacks.get(failed[i]!.message.id) ?? null) : null));
  const body: Record<string, unknown> = { runs };
  if (page.cursor) body.cursor = page.cursor;
  return c.json(body);
}

/** The message that resumes a waiting run: its waiting step, with the event's data or the timeout. */
function waitResult(step: Record<string, unknown>, eventId: string, timeout: string | null, data: Uint8Array | null): Uint8Array {
  const o: Record<string, unknown> = { ...step, waitEventId: eventId };
  if (timeout !== null) o.timeout = timeout;
  if (data !== null) o.out = bytesToBase64(data);
  o.waitTimeout = data === null;
  return utf8(JSON.stringify(o));
}

async function resume(env: Env, tenantId: string, w: { url: string; headers: Record<string, string>; step: Record<string, unknown>; eventId: string; timeout: string | null }, data: Uint8Array, now: number): Promise<string | null> {
  const out = await publishMessage(env, { tenantId, destination: w.url, cfg: objectConfig(w.headers), body: waitResult(w.step, w.eventId, w.timeout, data), callerIp: null, queueName: null }, now);
  const body = out.body as { messageId?: string };
  return body.messageId ?? null;
}

const WAIT_EXAMPLE = '{"url": "https://...", "timeout": "1h", "timeoutUrl": "https://...", "timeoutHeaders": {}, "step": {"stepId": 1, "stepName": "wait", "stepType": "Wait", "concurrent": 1}}';

/** context.waitForEvent: the run waits for `eventId` until the timeout, then goes on with `waitTimeout: true`. */
workflows.post("/wait/:eventId", async (c) => {
  const tenantId = c.get("tenant").id;
  const eventId = c.req.param("eventId");
  const body = (await readJson(c, 1 << 20, WAIT_EXAMPLE)) as Record<string, unknown> | null;
  if (!body || typeof body !== "object" || typeof body.url !== "string" || !body.step || typeof body.step !== "object") {
    throw badRequest(`the body must be JSON like ${WAIT_EXAMPLE}`);
  }
  const runId = (c.req.header("upstash-workflow-runid") ?? "").split(",")[0].trim();
  if (!runId) throw badRequest("Upstash-Workflow-RunId is required: a wait belongs to a workflow run");
  const run = await getRun(c.env.DB, tenantId, runId);
  if (!run || run.state !== "RUN_STARTED") return c.json({ error: `workflow run ${runId} is not running` }, 400);
  const timeout = typeof body.timeout === "number" ? `${body.timeout}s` : typeof body.timeout === "string" ? body.timeout : "7d";
  const timeoutMs = parseDuration(timeout, "timeout");
  const fromRequest: Record<string, string> = {};
  c.req.raw.headers.forEach((v, k) => {
    if (k.startsWith("upstash-") || k === "content-type") fromRequest[k] = v;
  });
  const headers = body.timeoutHeaders ? publishHeaders(body.timeoutHeaders) : fromRequest;
  const step = body.step as Record<string, unknown>;
  const now = Date.now();
  const timeoutUrl = typeof body.timeoutUrl === "string" ? body.timeoutUrl : body.url;
  const timeoutHeaders = body.timeoutHeaders ? publishHeaders(body.timeoutHeaders) : headers;
  // The timeout is a delayed message of the run, stored now; it goes on only if no event took the waiter first.
  const published = await publishMessage(
    c.env,
    {
      tenantId,
      destination: timeoutUrl,
      cfg: objectConfig({ ...timeoutHeaders, "upstash-delay": `${Math.max(0, Math.ceil(timeoutMs / 1000))}s` }),
      body: waitResult(step, eventId, timeout, null),
      callerIp: null,
      queueName: null,
      waiterTimeout: { eventId },
    },
    now,
  );
  await addWaiter(c.env.DB, {
    tenantId,
    eventId,
    runId,
    url: body.url,
    deadline: now + timeoutMs,
    headers,
    step,
    timeout,
    timeoutUrl,
    timeoutHeaders: Object.fromEntries(Object.entries(timeoutHeaders).map(([k, v]) => [k, [v]])),
    timeoutMessageId: (published.body as { messageId?: string }).messageId ?? null,
    createdAt: now,
  }).run();
  // An event notified for this run before it waited (looked for after the waiter is stored: a notify that comes in
  // between finds the waiter). Whoever deletes the waiter row resumes the run, so it is resumed once.
  const kept = await takeEvent(c.env.DB, tenantId, runId, eventId);
  if (kept) {
    const mine = await takeWaiters(c.env.DB, tenantId, eventId, runId);
    if (mine.length) await notifyAll(c.env, tenantId, mine, kept, now);
  }
  return c.json({});
});

function waiterView(w: Waiter): Record<string, unknown> {
  return {
    url: w.url,
    deadline: Math.floor(w.deadline / 1000),
    headers: Object.fromEntries(Object.entries(w.headers).map(([k, v]) => [k, [v]])),
    timeoutUrl: w.timeoutUrl ?? undefined,
    timeoutHeaders: w.timeoutHeaders ?? undefined,
  };
}

/** Resumes the waiters taken for an event, each with the event's data. */
async function notifyAll(env: Env, tenantId: string, waiters: Waiter[], data: Uint8Array, now: number): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  const timeouts = waiters.map((w) => w.timeoutMessageId).filter((x): x is string => !!x);
  if (timeouts.length) {
    await cancelMessages(env.DB, tenantId, timeouts, now);
    await unschedule(env, timeouts, settings(env).schedulerShards);
  }
  for (const w of waiters) {
    const messageId = await resume(env, tenantId, { url: w.url, headers: w.headers, step: w.step, eventId: w.eventId, timeout: w.timeout }, data, now);
    out.push({ waiter: waiterView(w), messageId, workflowRunId: w.runId });
  }
  return out;
}

/**
 * Notifies one run: resumes it if it waits for the event, else keeps the event for its wait, then looks for a
 * waiter again (a wait stored in between did not see the event). The waiter row goes to whoever deletes it first.
 */
async function notifyRun(env: Env, tenantId: string, runId: string, eventId: string, data: Uint8Array, now: number): Promise<Record<string, unknown>[]> {
  const waiters = await takeWaiters(env.DB, tenantId, eventId, runId);
  if (waiters.length) return notifyAll(env, tenantId, waiters, data, now);
  await keepEvent(env.DB, tenantId, runId, eventId, data, now).run();
  const late = await takeWaiters(env.DB, tenantId, eventId, runId);
  if (!late.length) return [];
  await takeEvent(env.DB, tenantId, runId, eventId);
  return notifyAll(env, tenantId, late, data, now);
}

/** client.notify: every run waiting for the event goes on with its data (an event nobody waits for is dropped). */
workflows.post("/notify/:eventId", async (c) => {
  const data = await readCapped(c.req.raw, settings(c.env).maxMessageSize, () => badRequest("the event's data is larger than MAX_MESSAGE_SIZE"));
  const waiters = await takeWaiters(c.env.DB, c.get("tenant").id, c.req.param("eventId"), null);
  return c.json(await notifyAll(c.env, c.get("tenant").id, waiters, data, Date.now()));
});

/** Notify one run: if it does not wait for the event yet, the event is kept until it does. */
workflows.post("/notify/:runId/:eventId", async (c) => {
  const tenantId = c.get("tenant").id;
  const runId = c.req.param("runId");
  const eventId = c.req.param("eventId");
  const data = await readCapped(c.req.raw, settings(c.env).maxMessageSize, () => badRequest("the event's data is larger than MAX_MESSAGE_SIZE"));
  const now = Date.now();
  const run = await getRun(c.env.DB, tenantId, runId);
  if (!run || run.state !== "RUN_STARTED") return c.json({ error: `workflow run ${runId} is not running` }, 404);
  const resumed = await notifyRun(c.env, tenantId, runId, eventId, data, now);
  return c.json(resumed[0] ?? { workflowRunId: runId, workflowCreatedAt: run.createdAt, kept: true });
});

/**
 * A webhook of a run (context.createWebhook / waitForWebhook): `/v2/workflows/hooks/{user id}/{run id}/{event id}`,
 * any method, no token (the event id is the secret, and only a run that waits for it can be resumed). The request
 * becomes the event's data: method, protocol, host, path and query, headers and body, as the SDK rebuilds it.
 */
export async function webhook(c: Context<AppEnv>): Promise<Response> {
  const { userId, runId, eventId } = c.req.param() as { userId: string; runId: string; eventId: string };
  const s = settings(c.env);
  const dev = s.devMode ? DEV_TENANTS.find((t) => t.name === userId) : undefined;
  const tenantId = dev?.id ?? userId;
  if (!s.devMode && DEV_TENANTS.some((t) => t.id === tenantId)) return c.json({ error: "not found" }, 404);
  const env = shardEnv(c.env, await tenantShard(c.env, tenantId));
  const run = await getRun(env.DB, tenantId, runId);
  if (!run || run.state !== "RUN_STARTED") return c.json({ error: `workflow run ${runId} is not running` }, 404);
  const body = await readCapped(c.req.raw, s.maxMessageSize, () => badRequest("the webhook's body is larger than MAX_MESSAGE_SIZE"));
  const url = new URL(c.req.url);
  const header: Record<string, string[]> = {};
  c.req.raw.headers.forEach((v, k) => {
    const name = k.replace(/(^|-)([a-z])/g, (_, d: string, ch: string) => d + ch.toUpperCase());
    (header[name] ??= []).push(v);
  });
  const data = utf8(JSON.stringify({ method: c.req.method, proto: url.protocol.replace(/:$/, ""), host: c.req.header("host") ?? url.host, url: url.pathname + url.search, header, body: bytesToBase64(body) }));
  await notifyRun(env, tenantId, runId, eventId, data, Date.now());
  return c.json({});
}

workflows.get("/waiters/:eventId", async (c) => c.json((await listWaiters(c.env.DB, c.get("tenant").id, c.req.param("eventId"))).map(waiterView)));

const WORKFLOW_DLQ_FILTERS = ["cursor", "count", "fromDate", "toDate", "label", "callerIp", "flowControlKey", "workflowRunId", "workflowCreatedAt", "failureFunctionState", "responseStatus"];

/** The DLQ entries a workflow DLQ call acts on: named by `dlqIds`, or by filters (a page of `count`). */
async function workflowDlq(c: Context<AppEnv>): Promise<{ items: DlqItem[]; cursor: string | null }> {
  const q = queryOf(c);
  const entries: [string, string][] = [["source", "workflow"]];
  for (const [k, v] of q.entries()) {
    if (k === "dlqIds") {
      for (const id of v.split(",")) if (id) entries.push(["dlqIds", id]);
    } else if (WORKFLOW_DLQ_FILTERS.includes(k)) entries.push([k, v]);
    else if (k === "workflowUrl") entries.push(["url", v]);
    else if (k !== "qstash_token" && k !== "source") throw badRequest(`unknown filter "${k}"; valid filters are dlqIds, workflowUrl, ${WORKFLOW_DLQ_FILTERS.join(", ")}`);
  }
  const f = parseFilters(new URLSearchParams(entries), {
    allowed: ["dlqIds", "url", "label", "callerIp", "flowControlKey", "source", "workflowRunId", "workflowCreatedAt", "failureFunctionState", "responseStatus"] as const,
    strict: true,
    maxCount: 100,
  });
  const page = await listDlq(c.env.DB, c.get("tenant").id, f, f.count ?? 100);
  return page;
}

/** restart / resume: every entry's run runs again under a new id; the entries leave the DLQ. */
async function rerunFromDlq(c: Context<AppEnv>, mode: "restart" | "resume", dlqId?: string): Promise<Response> {
  const tenantId = c.get("tenant").id;
  const page = dlqId ? { items: [await getDlq(c.env.DB, tenantId, dlqId)].filter((x): x is DlqItem => x !== null), cursor: null } : await workflowDlq(c);
  if (dlqId && !page.items.length) return c.json({ error: `DLQ entry ${dlqId} not found` }, 404);
  const overrides: Overrides = {};
  const retries = c.req.header("upstash-retries");
  if (retries !== undefined) overrides.retries = parseRetries(retries, "Upstash-Retries", settings(c.env));
  const fc = parseFlowControl(c.req.header("upstash-flow-control-key"), c.req.header("upstash-flow-control-value"));
  if (fc) overrides.flowControl = fc;
  const now = Date.now();
  const workflowRuns: { workflowRunId: string; workflowCreatedAt: number }[] = [];
  const done: string[] = [];
  for (const item of page.items) {
    const runId = item.message.headers["Upstash-Workflow-Runid"]?.[0];
    const run = runId ? await getRun(c.env.DB, tenantId, runId) : null;
    if (!run) continue; // the run is gone (pruned): nothing to run again
    workflowRuns.push(await rerun(c.env, run, item.message, mode, overrides, now));
    done.push(item.entry.dlqId);
  }
  if (done.length) await deleteDlq(c.env.DB, tenantId, done).run();
  const body: Record<string, unknown> = { workflowRuns };
  if (page.cursor) body.cursor = page.cursor;
  return c.json(dlqId ? (workflowRuns[0] ?? {}) : body);
}

workflows.post("/workflows/dlq/restart", (c) => rerunFromDlq(c, "restart"));
workflows.post("/workflows/dlq/resume", (c) => rerunFromDlq(c, "resume"));
workflows.post("/workflows/dlq/restart/:dlqId", (c) => rerunFromDlq(c, "restart", c.req.param("dlqId")));
workflows.post("/workflows/dlq/resume/:dlqId", (c) => rerunFromDlq(c, "resume", c.req.param("dlqId")));

/**
 * client.dlq.retryFailureFunction: the failure callback of a failed run's DLQ entry is sent again (a new message
 * with the same body: the run, its first payload, and the failed step's last answer).
 */
workflows.post("/workflows/dlq/callback/:dlqId", async (c) => {
  const tenantId = c.get("tenant").id;
  const item = await getDlq(c.env.DB, tenantId, c.req.param("dlqId"));
  if (!item) return c.json({ error: `DLQ entry ${c.req.param("dlqId")} not found` }, 404);
  const m = item.message;
  const runId = m.headers["Upstash-Workflow-Runid"]?.[0];
  const run = runId ? await getRun(c.env.DB, tenantId, runId) : null;
  if (!run) return c.json({ error: `DLQ entry ${item.entry.dlqId} is not a step of a stored workflow run` }, 400);
  if (!m.failureCallback) return c.json({ error: `workflow run ${run.runId} has no failure function or failure URL to call` }, 400);
  if (item.entry.responseBodyRef) item.entry.responseBody = await loadBlob(c.env, item.entry.responseBodyRef);
  const first = run.history[0];
  m.extra.workflow = { initialBody: first?.r ? bytesToBase64(await loadBlob(c.env, first.r)) : (first?.b ?? ""), createdAt: run.createdAt };
  const now = Date.now();
  const result = { status: item.entry.responseStatus, headers: item.entry.responseHeaders, body: item.entry.responseBody, bodyTruncated: false, error: item.entry.error, nonRetryable: false };
  await acceptMessages(c.env, [callbackMessage(m, "failure_callback", result, now, item.entry.dlqId)], now);
  return c.json({ workflowRunId: run.runId, workflowCreatedAt: run.createdAt });
});

/** Not supported: the REST trigger (the SDK starts runs through POST /v2/batch, which is). */
workflows.all("/trigger/*", (c) =>
  c.json({ error: "POST /v2/trigger/{url} is not supported by Boomerang yet; start runs with the Workflow SDK's client.trigger (POST /v2/batch), which is" }, 404),
);

/** The workflow DLQ: each entry with its run's start time and how its failure callback went. */
workflows.get("/workflows/dlq", async (c) => {
  const page = await workflowDlq(c);
  const facts = await runFacts(c.env.DB, c.get("tenant").id, page.items);
  const messages = page.items.map((i) => dlqView(i.entry, i.message, facts));
  const body: Record<string, unknown> = { messages };
  if (page.cursor) body.cursor = page.cursor;
  return c.json(body);
});

workflows.delete("/workflows/dlq", async (c) => {
  const page = await workflowDlq(c);
  const ids = page.items.map((i) => i.entry.dlqId);
  if (ids.length) await deleteDlq(c.env.DB, c.get("tenant").id, ids).run();
  const body: Record<string, unknown> = { deleted: ids.length };
  if (page.cursor) body.cursor = page.cursor;
  return c.json(body);
});

workflows.get("/workflows/events", runsPage);
workflows.get("/workflows/logs", runsPage);
workflows.all("/workflows/events", methodNotAllowed);
workflows.all("/workflows/logs", methodNotAllowed);
workflows.all("/workflows/runs/:id", methodNotAllowed);
workflows.all("/workflows/runs", methodNotAllowed);
