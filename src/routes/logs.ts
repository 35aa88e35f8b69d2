/** GET /v2/events and GET /v2/logs: the same log entries under the key each route's clients expect. */
import { loadMessageBodies, loadResponseBodies } from "../db/blobs";
import { type Context, Hono } from "hono";
import type { AppEnv } from "../app";
import { settings } from "../config";
import { parseFilters } from "../core/filters";
import { logView } from "../core/views";
import { listEvents } from "../db/logs";
import { PAGE_BODY_MAX } from "../db/pages";
import { methodNotAllowed, queryOf } from "./common";

export const logs = new Hono<AppEnv>();

const LOG_FILTERS = [
  "messageId",
  "state",
  "url",
  "host",
  "path",
  "topicName",
  "scheduleId",
  "queueName",
  "label",
  "flowControlKey",
  "callerIp",
] as const;

async function page(c: Context<AppEnv>, key: "events" | "logs"): Promise<Response> {
  const f = parseFilters(queryOf(c), { allowed: LOG_FILTERS, strict: false, maxCount: 1000 });
  const s = settings(c.env);
  const result = await listEvents(c.env.DB, c.get("tenant").id, f, f.count ?? 100, Date.now(), s.logRetentionMs);
  await Promise.all([
    loadMessageBodies(c.env, result.events.map((e) => e.message), PAGE_BODY_MAX),
    loadResponseBodies(c.env, result.events.map((e) => e.event), PAGE_BODY_MAX),
  ]);
  const maxTimeout = s.maxTimeoutMs;
  const body: Record<string, unknown> = {};
  if (result.cursor !== null) body.cursor = result.cursor;
  body[key] = result.events.map(({ event, message }) => logView(event, message, maxTimeout));
  return c.json(body);
}

logs.get("/events", (c) => page(c, "events"));
logs.get("/logs", (c) => page(c, "logs"));
logs.all("/events", methodNotAllowed);
logs.all("/logs", methodNotAllowed);
