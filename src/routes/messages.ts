/** /v2/messages: read a pending message, cancel one, cancel many by filter. */
import { loadMessageBodies } from "../db/blobs";
import { type Context, Hono } from "hono";
import type { AppEnv } from "../app";
import { settings } from "../config";
import { notFound } from "../core/errors";
import { messageView } from "../core/views";
import { cancelMessages, getPendingMessage, selectPendingIds } from "../db/messages";
import { WhereBuilder, messageConditions } from "../db/where";
import { unschedule } from "../delivery/dispatch";
import { releaseCancelled } from "../delivery/release";
import { bulkFilters, methodNotAllowed } from "./common";

export const messages = new Hono<AppEnv>();

const CANCEL_FILTERS = [
  "messageId",
  "topicName",
  "queueName",
  "url",
  "host",
  "path",
  "label",
  "flowControlKey",
  "scheduleId",
  "callerIp",
] as const;

messages.get("/messages/:id", async (c) => {
  const m = await getPendingMessage(c.env.DB, c.get("tenant").id, c.req.param("id"));
  if (!m) throw notFound(`message ${c.req.param("id")} not found (delivered, failed and cancelled messages are in the logs)`);
  await loadMessageBodies(c.env, [m]);
  return c.json(messageView(m));
});

async function cancel(c: Context<AppEnv>, ids: { id: string; dueAt: number }[]): Promise<number> {
  const now = Date.now();
  const count = await cancelMessages(c.env.DB, c.get("tenant").id, ids.map((i) => i.id), now);
  const delayed = ids.filter((i) => i.dueAt > now).map((i) => i.id);
  if (delayed.length) await unschedule(c.env, delayed, settings(c.env).schedulerShards);
  await releaseCancelled(c.env, ids.map((i) => i.id));
  return count;
}

messages.delete("/messages/:id", async (c) => {
  const m = await getPendingMessage(c.env.DB, c.get("tenant").id, c.req.param("id"));
  if (!m || m.cancelRequested) throw notFound(`message ${c.req.param("id")} not found or no longer pending`);
  const n = await cancel(c, [{ id: m.id, dueAt: m.dueAt }]);
  if (n === 0) throw notFound(`message ${m.id} is no longer pending`);
  return c.json({ cancelled: 1 });
});

messages.delete("/messages", async (c) => {
  const { filters: f, nothing } = await bulkFilters(c, { allowed: CANCEL_FILTERS, strict: true, maxCount: 500 }, [
    "messageIds",
    "messageId",
  ]);
  if (nothing) return c.json({ cancelled: 0 });
  const w = new WhereBuilder();
  const ids = f.values.get("messageId");
  if (ids) w.in("m.id", ids);
  else {
    messageConditions(w, f);
    if (f.fromDate !== null) w.add((p) => `m.created_at >= ${p(f.fromDate)}`);
    if (f.toDate !== null) w.add((p) => `m.created_at <= ${p(f.toDate)}`);
  }
  // No filter at all (no filter in the query and no body) cancels every pending message of the tenant: hosted
  // behaviour, and how the SDKs ask for it (JS `{all: true}` sends only `count`, Python `cancel_all()` and Go
  // `CancelAll()` send nothing).
  const pending = await selectPendingIds(c.env.DB, c.get("tenant").id, { sql: w.toSql(), params: w.params }, f.count ?? 500);
  return c.json({ cancelled: await cancel(c, pending) });
});

messages.all("/messages/", (c) => c.json({ error: "a message id is required" }, 404));
messages.all("/messages/:id", methodNotAllowed);
messages.all("/messages", methodNotAllowed);
