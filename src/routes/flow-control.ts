/** /v2/flowControl and /v2/globalParallelism: the state of flow-control keys and their controls. */
import { flowKeyExists, searchFlowKeys } from "../db/flow-keys";
import { attemptsUnderWay } from "../db/messages";
import { type Context, Hono } from "hono";
import type { AppEnv } from "../app";
import { settings } from "../config";
import { badRequest, notFound } from "../core/errors";
import { type GateInfo, gateName, gateStub } from "../objects/gate";
import { methodNotAllowed, queryOf } from "./common";

export const flowControl = new Hono<AppEnv>();

function view(key: string, i: GateInfo) {
  return {
    flowControlKey: key,
    waitListSize: i.waiting,
    parallelismMax: i.parallelism ?? 0,
    parallelismCount: i.inflight,
    rateMax: i.rate ?? 0,
    rateCount: i.rateCount,
    ratePeriod: i.periodS,
    ratePeriodStart: Math.floor(i.periodStart / 1000),
    isPaused: i.paused,
    isPinnedParallelism: i.pinnedParallelism,
    isPinnedRate: i.pinnedRate,
  };
}

async function known(c: Context<AppEnv>): Promise<string> {
  const key = c.req.param("key")!;
  if (!(await flowKeyExists(c.env.DB, c.get("tenant").id, key))) throw notFound(`flow-control key ${key} not found (a key exists once a message used it)`);
  return key;
}

const gate = (c: Context<AppEnv>, key: string) => gateStub(c.env, gateName("flow", c.get("tenant").id, key));

flowControl.get("/flowControl", async (c) => {
  const search = c.req.query("search") ?? "";
  const keys = await searchFlowKeys(c.env.DB, c.get("tenant").id, search);
  return c.json(await Promise.all(keys.map(async (key) => view(key, await gate(c, key).info()))));
});

flowControl.get("/flowControl/:key", async (c) => {
  const key = await known(c);
  return c.json(view(key, await gate(c, key).info()));
});

function positiveInt(q: URLSearchParams, name: string): number | null {
  const v = q.get(name);
  if (v === null) return null;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw badRequest(`${name} must be a positive integer, got "${v}"`);
  return Number(v);
}

flowControl.post("/flowControl/:key/pause", async (c) => {
  await gate(c, await known(c)).configure({ paused: true });
  return c.json({});
});
flowControl.post("/flowControl/:key/resume", async (c) => {
  await gate(c, await known(c)).configure({ paused: false });
  return c.json({});
});
flowControl.post("/flowControl/:key/pin", async (c) => {
  const key = await known(c);
  const q = queryOf(c);
  const parallelism = positiveInt(q, "parallelism");
  const rate = positiveInt(q, "rate");
  const periodS = positiveInt(q, "period");
  if (periodS !== null && periodS > 7 * 86_400) throw badRequest("period must be at most 604800 seconds (7 days)");
  if (parallelism === null && rate === null && periodS === null) throw badRequest("pin needs parallelism, rate or period");
  await gate(c, key).pin({ parallelism, rate, periodS });
  return c.json({});
});
flowControl.post("/flowControl/:key/unpin", async (c) => {
  const key = await known(c);
  const q = queryOf(c);
  await gate(c, key).unpin({ parallelism: q.get("parallelism") === "true", rate: q.get("rate") === "true" });
  return c.json({});
});
flowControl.post("/flowControl/:key/resetRate", async (c) => {
  await gate(c, await known(c)).resetRate();
  return c.json({});
});
flowControl.post("/flowControl/:key/reset", async (c) => {
  await gate(c, await known(c)).reset();
  return c.json({});
});

flowControl.get("/globalParallelism", async (c) => {
  const now = Date.now();
  const count = await attemptsUnderWay(c.env.DB, c.get("tenant").id, now);
  return c.json({ parallelismMax: settings(c.env).globalParallelism, parallelismCount: count });
});

for (const p of ["/flowControl/:key/pause", "/flowControl/:key/resume", "/flowControl/:key/pin", "/flowControl/:key/unpin",
  "/flowControl/:key/resetRate", "/flowControl/:key/reset", "/flowControl/:key", "/flowControl", "/globalParallelism"]) {
  flowControl.all(p, methodNotAllowed);
}
