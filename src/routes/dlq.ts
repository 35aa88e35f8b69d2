/** /v2/dlq: list, read, delete and retry failed messages, one at a time or by filter. */
import { loadMessageBodies, loadResponseBodies } from "../db/blobs";
import type { Env } from "../env";
import { type Context, Hono } from "hono";
import type { AppEnv } from "../app";
import { settings } from "../config";
import { notFound } from "../core/errors";
import { type Filters, parseFilters } from "../core/filters";
import { dlqRetryMessageId, shardOfId } from "../core/ids";
import { type ConfigSource, parseSpec, requestConfig } from "../core/spec";
import type { StoredMessage } from "../core/types";
import { dlqView } from "../core/views";
import { type DlqItem, deleteDlq, getDlq, listDlq, runFacts } from "../db/dlq";
import { PAGE_BODY_MAX } from "../db/pages";
import { acceptMessages } from "../delivery/accept";
import { bulkFilters, methodNotAllowed, queryOf } from "./common";

export const dlq = new Hono<AppEnv>();

const DLQ_FILTERS = [
  "messageId",
  "dlqIds",
  "url",
  "topicName",
  "scheduleId",
  "queueName",
  "label",
  "flowControlKey",
  "callerIp",
  "responseStatus",
  "source",
  "workflowRunId",
  "workflowCreatedAt",
  "failureFunctionState",
] as const;

const DLQ_RULES = { allowed: DLQ_FILTERS, strict: true, refused: ["host", "path"], maxCount: 100 };

/** Filters of a bulk DLQ call, from the query or a JSON body (`{"dlqIds": [...]}` from the Python and Go SDKs). */
function bulk(c: Context<AppEnv>): Promise<{ filters: Filters; nothing: boolean }> {
  return bulkFilters(c, DLQ_RULES, ["dlqIds"]);
}

/** The message and response bodies of DLQ entries that live in R2 (in a list page, at most `cap` bytes each). */
async function loadDlqBodies(env: Env, items: DlqItem[], cap?: number): Promise<void> {
  await Promise.all([loadMessageBodies(env, items.map((i) => i.message), cap), loadResponseBodies(env, items.map((i) => i.entry), cap)]);
}

dlq.get("/dlq", async (c) => {
  const f = parseFilters(queryOf(c), DLQ_RULES);
  const page = await listDlq(c.env.DB, c.get("tenant").id, f, f.count ?? 100);
  const [facts] = await Promise.all([runFacts(c.env.DB, c.get("tenant").id, page.items), loadDlqBodies(c.env, page.items, PAGE_BODY_MAX)]);
  const body: Record<string, unknown> = {};
  if (page.cursor !== null) body.cursor = page.cursor;
  body.messages = page.items.map((i) => dlqView(i.entry, i.message, facts));
  return c.json(body);
});

dlq.get("/dlq/:dlqId", async (c) => {
  const item = await getDlq(c.env.DB, c.get("tenant").id, c.req.param("dlqId"));
  if (!item) throw notFound(`DLQ entry ${c.req.param("dlqId")} not found`);
  const [facts] = await Promise.all([runFacts(c.env.DB, c.get("tenant").id, [item]), loadDlqBodies(c.env, [item])]);
  return c.json(dlqView(item.entry, item.message, facts));
});

dlq.delete("/dlq/:dlqId", async (c) => {
  const res = await deleteDlq(c.env.DB, c.get("tenant").id, [c.req.param("dlqId")]).run();
  if (res.meta.changes === 0) throw notFound(`DLQ entry ${c.req.param("dlqId")} not found`);
  return c.json({ deleted: 1 });
});

dlq.delete("/dlq", async (c) => {
  const { filters: f, nothing } = await bulk(c);
  if (nothing) return c.json({ deleted: 0 });
  const page = await listDlq(c.env.DB, c.get("tenant").id, f, f.count ?? 100);
  const ids = page.items.map((i) => i.entry.dlqId);
  if (ids.length) await deleteDlq(c.env.DB, c.get("tenant").id, ids).run();
  const body: Record<string, unknown> = { deleted: ids.length };
  if (page.cursor !== null) body.cursor = page.cursor;
  return c.json(body);
});

/** The failed message published again with a new id, with any override headers applied. */
async function retryMessage(item: DlqItem, cfg: ConfigSource, c: Context<AppEnv>, now: number): Promise<StoredMessage> {
  const s = settings(c.env);
  const spec = parseSpec(cfg, s, now);
  const has = (name: string) => cfg.get(name) !== undefined;
  const m = item.message;
  const delayed = has("upstash-delay") || has("upstash-not-before");
  return {
    ...m,
    id: await dlqRetryMessageId(shardOfId(m.id), m.tenantId, item.entry.dlqId),
    method: has("upstash-method") ? spec.method : m.method,
    maxRetries: has("upstash-retries") ? spec.maxRetries : m.maxRetries,
    retryDelayExpr: has("upstash-retry-delay") ? spec.retryDelayExpr : m.retryDelayExpr,
    timeoutMs: has("upstash-timeout") ? spec.timeoutMs : m.timeoutMs,
    notBefore: delayed ? spec.notBefore : 0,
    callback: has("upstash-callback") ? spec.callback : m.callback,
    failureCallback: has("upstash-failure-callback") ? spec.failureCallback : m.failureCallback,
    callbackConfig: spec.callbackConfig ?? m.callbackConfig,
    failureCallbackConfig: spec.failureCallbackConfig ?? m.failureCallbackConfig,
    flowControl: spec.flowControl ?? m.flowControl,
    createdAt: now,
    state: "CREATED",
    retried: 0,
    dueAt: delayed ? Math.max(spec.notBefore, now) : now,
    leaseUntil: null,
    cancelRequested: false,
    finishedAt: null,
  };
}

async function retryItems(c: Context<AppEnv>, items: DlqItem[]): Promise<string[]> {
  const now = Date.now();
  const cfg = requestConfig(c.req.raw.headers, null);
  const fresh = await Promise.all(items.map((i) => retryMessage(i, cfg, c, now)));
  const tenantId = c.get("tenant").id;
  await acceptMessages(c.env, fresh, now, [deleteDlq(c.env.DB, tenantId, items.map((i) => i.entry.dlqId))]);
  return fresh.map((m) => m.id);
}

dlq.post("/dlq/retry/:dlqId", async (c) => {
  const item = await getDlq(c.env.DB, c.get("tenant").id, c.req.param("dlqId"));
  if (!item) throw notFound(`DLQ entry ${c.req.param("dlqId")} not found`);
  const [messageId] = await retryItems(c, [item]);
  return c.json({ messageId }, 201);
});

dlq.post("/dlq/retry", async (c) => {
  const { filters: f, nothing } = await bulk(c);
  if (nothing) return c.json({ responses: [] }, 201);
  const page = await listDlq(c.env.DB, c.get("tenant").id, f, f.count ?? 100);
  const ids = await retryItems(c, page.items);
  const body: Record<string, unknown> = {};
  if (page.cursor !== null) body.cursor = page.cursor;
  body.responses = ids.map((messageId) => ({ messageId }));
  return c.json(body, 201);
});

dlq.all("/dlq/", (c) => c.json({ error: "a DLQ id is required" }, 404));
dlq.all("/dlq/retry/:dlqId", methodNotAllowed);
dlq.all("/dlq/retry", methodNotAllowed);
dlq.all("/dlq/:dlqId", methodNotAllowed);
dlq.all("/dlq", methodNotAllowed);

