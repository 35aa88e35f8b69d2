/** /v2/queues: FIFO queues with a parallelism; ordering and lag come from each queue's Gate. */
import { type Context, Hono } from "hono";
import type { AppEnv } from "../app";
import { settings } from "../config";
import { ApiError, badRequest, notFound } from "../core/errors";
import { cancelHeldInQueue, cancelMessages } from "../db/messages";
import { type QueueRow, countQueues, deleteQueueRow, getQueue, listQueues, setQueuePaused, upsertQueue } from "../db/queues";
import { checkQueueName } from "../delivery/publish";
import { gateName, gateStub } from "../objects/gate";
import { methodNotAllowed, readJson } from "./common";

export const queues = new Hono<AppEnv>();

async function view(c: Context<AppEnv>, q: QueueRow) {
  const info = await gateStub(c.env, gateName("queue", c.get("tenant").id, q.name)).info();
  return { name: q.name, createdAt: q.createdAt, updatedAt: q.updatedAt, parallelism: q.parallelism, lag: info.waiting, paused: q.paused };
}

const QUEUE_EXAMPLE = '{"queueName": "jobs", "parallelism": 1, "paused": false}';

async function jsonObject(c: Context<AppEnv>): Promise<Record<string, unknown>> {
  const v = await readJson(c, 64 * 1024, QUEUE_EXAMPLE);
  if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  throw badRequest(`the body must be a JSON object like ${QUEUE_EXAMPLE}`);
}

queues.post("/queues", async (c) => {
  const s = settings(c.env);
  const body = await jsonObject(c);
  if (typeof body.queueName !== "string") throw badRequest("queueName is required and must be a string");
  const name = checkQueueName(body.queueName);
  const parallelism = body.parallelism ?? 1;
  if (typeof parallelism !== "number" || !Number.isInteger(parallelism) || parallelism < 1) {
    throw badRequest(`parallelism must be an integer of at least 1, got ${JSON.stringify(body.parallelism)}`);
  }
  if (parallelism > s.maxParallelism) {
    throw new ApiError(412, `parallelism ${parallelism} is above the maximum of ${s.maxParallelism} (MAX_PARALLELISM)`);
  }
  if (body.paused !== undefined && typeof body.paused !== "boolean") throw badRequest("paused must be true or false");
  const tenantId = c.get("tenant").id;
  if (!(await getQueue(c.env.DB, tenantId, name)) && (await countQueues(c.env.DB, tenantId)) >= s.maxQueues) {
    throw new ApiError(412, `the tenant already has the maximum of ${s.maxQueues} queues (MAX_QUEUES)`);
  }
  const paused = body.paused === true;
  await upsertQueue(c.env.DB, tenantId, name, parallelism, paused, Date.now());
  await gateStub(c.env, gateName("queue", tenantId, name)).configure({ parallelism, paused });
  return c.json({});
});

queues.get("/queues", async (c) => {
  const list = await listQueues(c.env.DB, c.get("tenant").id);
  return c.json(await Promise.all(list.map((q) => view(c, q))));
});

queues.get("/queues/:name", async (c) => {
  const name = checkQueueName(c.req.param("name"));
  const q = await getQueue(c.env.DB, c.get("tenant").id, name);
  if (!q) throw notFound(`queue ${name} not found`);
  return c.json(await view(c, q));
});

queues.delete("/queues/:name", async (c) => {
  const tenantId = c.get("tenant").id;
  const name = checkQueueName(c.req.param("name"));
  // Idempotent, like every delete of a named resource: a queue that does not exist is already gone.
  if (!(await deleteQueueRow(c.env.DB, tenantId, name))) return c.json({});
  // Messages of a deleted queue that have not started are cancelled (logged CANCELED), by queue name in D1 first;
  // the gate is drained after. If this stops half-way, the sweeper cancels held messages whose queue is gone.
  await cancelHeldInQueue(c.env.DB, tenantId, name, Date.now());
  const waiting = await gateStub(c.env, gateName("queue", tenantId, name)).drain();
  // Messages that reached the gate while the cancel ran.
  await cancelMessages(c.env.DB, tenantId, waiting, Date.now());
  return c.json({});
});

async function pauseOrResume(c: Context<AppEnv>, paused: boolean): Promise<Response> {
  const tenantId = c.get("tenant").id;
  const name = checkQueueName(c.req.param("name")!);
  if (!(await setQueuePaused(c.env.DB, tenantId, name, paused, Date.now()))) throw notFound(`queue ${name} not found`);
  await gateStub(c.env, gateName("queue", tenantId, name)).configure({ paused });
  return c.json({});
}

queues.post("/queues/:name/pause", (c) => pauseOrResume(c, true));
queues.post("/queues/:name/resume", (c) => pauseOrResume(c, false));
queues.all("/queues/:name/pause", methodNotAllowed);
queues.all("/queues/:name/resume", methodNotAllowed);
queues.all("/queues/:name", methodNotAllowed);
queues.all("/queues", methodNotAllowed);
