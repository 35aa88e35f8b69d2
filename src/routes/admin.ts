/** /admin: create tenants and tokens on a deployed instance; enabled only when ADMIN_SECRET is set. */
import { Hono } from "hono";
import type { AppEnv } from "../app";
import { ApiError, badRequest, notFound } from "../core/errors";
import { sha256Hex } from "../core/encoding";
import { addToken, createTenant } from "../db/tenants";
import { sweepAll } from "../delivery/sweeper";
import { readCounters, resetCounters } from "../meter";
import { methodNotAllowed, readCapped } from "./common";

export const admin = new Hono<AppEnv>();

admin.use("*", async (c, next) => {
  const secret = c.env.ADMIN_SECRET;
  if (!secret) return c.json({ error: "the admin API is disabled; set the ADMIN_SECRET secret to enable it" }, 404);
  const given = /^bearer\s+(.+)$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
  // Compare digests so the comparison time does not depend on where the strings differ.
  if ((await sha256Hex(given)) !== (await sha256Hex(secret))) return c.json({ error: "Unauthorized" }, 401);
  await next();
});

async function jsonBody(req: Request): Promise<Record<string, unknown>> {
  const text = new TextDecoder().decode(await readCapped(req, 64 * 1024, () => new ApiError(413, "an admin request body may be at most 65536 bytes")));
  if (text.trim() === "") return {};
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through to the 400 below
  }
  throw badRequest("the body must be a JSON object");
}

admin.post("/tenants", async (c) => {
  const body = await jsonBody(c.req.raw);
  const name = body.name ?? "tenant";
  if (typeof name !== "string" || name.length > 200) throw badRequest("name must be a string of at most 200 characters");
  return c.json(await createTenant(c.env, name, Date.now()), 201);
});

admin.post("/tenants/:id/tokens", async (c) => {
  const body = await jsonBody(c.req.raw);
  const token = await addToken(c.env.DB, c.req.param("id"), body.readOnly === true, Date.now());
  if (!token) throw notFound(`tenant ${c.req.param("id")} not found`);
  return c.json({ token, readOnly: body.readOnly === true }, 201);
});

/** Operation counters of this isolate (METER=true), for the cost benchmark. */
admin.get("/metrics", async (c) => {
  if (c.env.METER !== "true") return c.json({ metering: false });
  return c.json({ metering: true, ...(await readCounters(c.env)) });
});
admin.post("/metrics/reset", async (c) => {
  if (c.env.METER === "true") await resetCounters(c.env);
  return c.json({});
});

/**
 * Runs the sweeper now and answers its report (re-driven, re-gated, pruned counts). `?pruneBudgetMs=` bounds how
 * long it prunes (default 20 s). The cron trigger runs the same sweep every minute.
 */
admin.post("/sweep", async (c) => {
  const raw = c.req.query("pruneBudgetMs");
  if (raw !== undefined && !/^\d+$/.test(raw)) throw badRequest(`pruneBudgetMs: "${raw}" must be a number of milliseconds`);
  return c.json(await sweepAll(c.env, Date.now(), { pruneBudgetMs: raw === undefined ? undefined : Number(raw) }));
});

admin.all("/sweep", methodNotAllowed);
admin.all("/tenants", methodNotAllowed);
admin.all("/tenants/:id/tokens", methodNotAllowed);
