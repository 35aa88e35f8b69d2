/** /v2/schedules: cron schedules that publish a message at each fire. */
import { type Context, Hono } from "hono";
import type { AppEnv } from "../app";
import { settings } from "../config";
import { parseCron, nextFire } from "../core/cron";
import { classifyDestination, destinationFromRawUrl } from "../core/destination";
import { bytesToBase64, utf8OrNull } from "../core/encoding";
import { flowControlFields } from "../core/views";
import { ApiError, badRequest, notFound } from "../core/errors";
import { NAME_RE, newScheduleId } from "../core/ids";
import { parseDelay, parseSpec, requestConfig } from "../core/spec";
import {
  type Schedule,
  countSchedules,
  deleteSchedule,
  getSchedule,
  listSchedules,
  messageStates,
  setPaused,
  upsertSchedule,
} from "../db/schedules";
import { putDedup } from "../db/dedup";
import { getGroup } from "../db/topics";
import { dedupKey, earlierResponse } from "../delivery/publish";
import { timerStub } from "../objects/schedule-timer";
import type { Env } from "../env";
import { loadBlob, spill } from "../db/blobs";
import { callerIp, methodNotAllowed, queryOf, readBody } from "./common";

export const schedules = new Hono<AppEnv>();

const SCHEDULE_STATE: Record<string, string> = { DELIVERED: "SUCCESS", FAILED: "FAIL", CANCELED: "FAIL" };

async function view(env: Env, s: Schedule): Promise<Record<string, unknown>> {
  const db = env.DB;
  if (s.bodyRef) s.body = await loadBlob(env, s.bodyRef);
  const o: Record<string, unknown> = {
    scheduleId: s.id,
    cron: s.cron,
    destination: s.destination,
    createdAt: s.createdAt,
    method: s.method,
    header: s.headers,
  };
  if (s.body.length) {
    const text = utf8OrNull(s.body);
    if (text !== null) o.body = text;
    else o.bodyBase64 = bytesToBase64(s.body);
  }
  o.retries = s.retries;
  if (s.delayMs !== null) o.delay = Math.floor(s.delayMs / 1000);
  if (s.retryDelayExpr) o.retryDelayExpression = s.retryDelayExpr;
  if (s.timeoutMs !== null) o.timeout = Math.floor(s.timeoutMs / 1000);
  if (s.callback) o.callback = s.callback;
  if (s.failureCallback) o.failureCallback = s.failureCallback;
  if (s.callerIp) {
    o.callerIp = s.callerIp;
    o.callerIP = s.callerIp;
  }
  o.isPaused = s.isPaused;
  if (s.queueName) o.queueName = s.queueName;
  flowControlFields(o, s.flowControl);
  if (s.labels.length) {
    o.label = s.labels[0];
    o.labels = s.labels;
  }
  if (s.lastScheduleTime !== null) o.lastScheduleTime = s.lastScheduleTime;
  if (s.nextScheduleTime !== null) o.nextScheduleTime = s.nextScheduleTime;
  if (s.lastMessageIds.length) {
    const states = await messageStates(db, s.lastMessageIds);
    o.lastScheduleStates = Object.fromEntries(
      s.lastMessageIds.map((id) => [id, SCHEDULE_STATE[states.get(id) ?? ""] ?? "IN_PROGRESS"]),
    );
  }
  return o;
}

async function pauseOrResume(c: Context<AppEnv>, paused: boolean): Promise<Response> {
  const tenantId = c.get("tenant").id;
  const id = c.req.param("id")!;
  const existing = await getSchedule(c.env.DB, tenantId, id);
  if (!existing) throw notFound(`schedule ${id} not found`);
  const now = Date.now();
  const next = paused ? null : nextFire(parseCron(existing.cron), now);
  await setPaused(c.env.DB, tenantId, id, paused, next, now);
  await timerStub(c.env, tenantId, id).arm(tenantId, id, next);
  return c.json({});
}

// Registered before the create route, whose wildcard would otherwise take "/schedules/<id>/pause".
for (const method of ["post", "patch"] as const) {
  schedules[method]("/schedules/:id/pause", (c) => pauseOrResume(c, true));
  schedules[method]("/schedules/:id/resume", (c) => pauseOrResume(c, false));
}

schedules.post("/schedules/*", async (c) => {
  const s = settings(c.env);
  const now = Date.now();
  const raw = destinationFromRawUrl(c.req.url, "/v2/schedules/");
  const dest = classifyDestination(raw, s.allowPrivateDestinations);
  const cfg = requestConfig(c.req.raw.headers, queryOf(c));
  const cron = parseCron(cfg.get("upstash-cron"));
  if (cfg.get("upstash-not-before") !== undefined) {
    throw badRequest("Upstash-Not-Before is not allowed on schedules; use Upstash-Delay to delay each produced message");
  }
  const id = cfg.get("upstash-schedule-id")?.trim() || newScheduleId();
  if (!NAME_RE.test(id) || id.length > 256) {
    throw badRequest(`Upstash-Schedule-Id: "${id}" can only contain alphanumeric characters, hyphens, periods, and underscores`);
  }
  const queueName = cfg.get("upstash-queue-name")?.trim() || null;
  if (queueName !== null && !NAME_RE.test(queueName)) {
    throw badRequest(`Upstash-Queue-Name: "${queueName}" can only contain alphanumeric characters, hyphens, periods, and underscores`);
  }
  const spec = parseSpec(cfg, s, now);
  const delayRaw = cfg.get("upstash-delay");
  const delayMs = delayRaw === undefined ? null : parseDelay(delayRaw, "Upstash-Delay", s);
  const body = await readBody(c, s.maxMessageSize);
  const tenantId = c.get("tenant").id;
  if (dest.kind === "group" && !(await getGroup(c.env.DB, tenantId, dest.name))) {
    throw notFound(`URL group "${dest.name}" not found; create it with POST /v2/topics/${dest.name}/endpoints`);
  }
  // Dedup headers deduplicate the create call itself (contract §4.10): a repeat answers with the original id.
  const key = await dedupKey(spec, `schedule\u0000${raw}`, body);
  if (key !== null) {
    const earlier = await earlierResponse(c.env.DB, tenantId, key, now);
    if (earlier) return c.json(earlier.body, 202);
  }
  if (!(await getSchedule(c.env.DB, tenantId, id)) && (await countSchedules(c.env.DB, tenantId)) >= s.maxSchedules) {
    throw new ApiError(412, `the tenant already has the maximum of ${s.maxSchedules} schedules (MAX_SCHEDULES)`);
  }
  const saved = await upsertSchedule(c.env.DB, {
    tenantId,
    id,
    cron: cron.expression,
    destination: dest.kind === "url" ? dest.url : dest.name,
    method: spec.method,
    headers: spec.headers,
    body,
    bodyRef: await spill(c.env, s.inlineBodyMax, tenantId, body),
    retries: spec.maxRetries,
    retryDelayExpr: spec.retryDelayExpr,
    timeoutMs: spec.timeoutMs,
    delayMs,
    callback: spec.callback,
    failureCallback: spec.failureCallback,
    callbackConfig: spec.callbackConfig,
    failureCallbackConfig: spec.failureCallbackConfig,
    queueName,
    flowControl: spec.flowControl,
    labels: spec.labels,
    callerIp: callerIp(c),
    isPaused: false,
    createdAt: now,
    updatedAt: now,
    nextScheduleTime: nextFire(cron, now),
    lastScheduleTime: null,
    lastMessageIds: [],
    redact: spec.redact,
  });
  if (key !== null) {
    await putDedup(c.env.DB, tenantId, key, JSON.stringify({ scheduleId: id }), now + s.dedupWindowMs);
  }
  await timerStub(c.env, tenantId, id).arm(tenantId, id, saved.nextScheduleTime);
  return c.json({ scheduleId: id });
});

schedules.get("/schedules", async (c) => {
  const list = await listSchedules(c.env.DB, c.get("tenant").id);
  return c.json(await Promise.all(list.map((s) => view(c.env, s))));
});

schedules.get("/schedules/:id", async (c) => {
  const s = await getSchedule(c.env.DB, c.get("tenant").id, c.req.param("id"));
  if (!s) throw notFound(`schedule ${c.req.param("id")} not found`);
  return c.json(await view(c.env, s));
});

schedules.delete("/schedules/:id", async (c) => {
  const tenantId = c.get("tenant").id;
  const id = c.req.param("id");
  // Idempotent, like every delete of a named resource: a schedule that does not exist is already gone.
  if (!(await deleteSchedule(c.env.DB, tenantId, id))) return c.json({});
  await timerStub(c.env, tenantId, id).disarm();
  return c.json({});
});



schedules.all("/schedules/:id/pause", methodNotAllowed);
schedules.all("/schedules/:id/resume", methodNotAllowed);
schedules.all("/schedules/", (c) => c.json({ error: "a schedule id is required" }, 404));
schedules.all("/schedules/:id", methodNotAllowed);
schedules.all("/schedules", methodNotAllowed);
