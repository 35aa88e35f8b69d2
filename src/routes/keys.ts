/** GET /v2/keys and POST /v2/keys/rotate: the tenant's signing key pair. */
import { Hono } from "hono";
import type { AppEnv } from "../app";
import { getKeys, rotateKeys } from "../db/tenants";
import { methodNotAllowed } from "./common";

export const keys = new Hono<AppEnv>();

keys.get("/keys", async (c) => {
  const pair = await getKeys(c.env.DB, c.get("tenant").id);
  if (!pair) throw new Error("tenant without signing keys");
  return c.json(pair);
});

keys.post("/keys/rotate", async (c) => c.json(await rotateKeys(c.env.DB, c.get("tenant").id, Date.now())));

keys.all("/keys", methodNotAllowed);
keys.all("/keys/rotate", methodNotAllowed);
