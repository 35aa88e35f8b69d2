/** POST /v2/publish/{destination}: accept a message for a URL (URL groups arrive with their own issue). */
import { Hono } from "hono";
import type { AppEnv } from "../app";
import { settings } from "../config";
import { classifyDestination, destinationFromRawUrl } from "../core/destination";
import { notFound } from "../core/errors";
import { newMessage } from "../core/message";
import { parseSpec, requestConfig } from "../core/spec";
import { acceptMessages } from "../delivery/accept";
import { callerIp, methodNotAllowed, queryOf, readBody } from "./common";

export const publish = new Hono<AppEnv>();

publish.post("/publish/*", async (c) => {
  const s = settings(c.env);
  const now = Date.now();
  const dest = classifyDestination(destinationFromRawUrl(c.req.url, "/v2/publish/"), s.allowPrivateDestinations);
  const spec = parseSpec(requestConfig(c.req.raw.headers, queryOf(c)), s, now);
  const body = await readBody(c, s.maxMessageSize);
  if (dest.kind === "group") throw notFound(`URL group "${dest.name}" not found`);
  const tenant = c.get("tenant");
  const message = newMessage(spec, { tenantId: tenant.id, url: dest.url, body, callerIp: callerIp(c) }, now);
  await acceptMessages(c.env, [message], now);
  return c.json({ messageId: message.id });
});
publish.all("/publish/*", methodNotAllowed);
publish.all("/publish", methodNotAllowed);
