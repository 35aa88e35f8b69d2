/** POST /v2/publish/{destination} and POST /v2/enqueue/{queue}/{destination}. */
import { type Context, Hono } from "hono";
import type { AppEnv } from "../app";
import { settings } from "../config";
import { destinationFromRawUrl } from "../core/destination";
import { badRequest } from "../core/errors";
import { requestConfig } from "../core/spec";
import { publishMessage } from "../delivery/publish";
import { callerIp, methodNotAllowed, queryOf, readBody, waitUntilOf } from "./common";

export const publish = new Hono<AppEnv>();

async function handle(c: Context<AppEnv>, destination: string, queueName: string | null): Promise<Response> {
  const s = settings(c.env);
  const body = await readBody(c, s.maxMessageSize);
  const out = await publishMessage(
    c.env,
    {
      tenantId: c.get("tenant").id,
      destination,
      cfg: requestConfig(c.req.raw.headers, queryOf(c)),
      body,
      callerIp: callerIp(c),
      queueName,
      waitUntil: waitUntilOf(c),
    },
    Date.now(),
  );
  return c.json(out.body, out.status);
}

publish.post("/publish/*", (c) => handle(c, destinationFromRawUrl(c.req.url, "/v2/publish/"), null));

publish.post("/enqueue/*", (c) => {
  const rest = destinationFromRawUrl(c.req.url, "/v2/enqueue/");
  const slash = rest.indexOf("/");
  if (slash <= 0) throw badRequest("use POST /v2/enqueue/{queueName}/{destination}");
  let queue: string;
  try {
    queue = decodeURIComponent(rest.slice(0, slash));
  } catch {
    throw badRequest(`queue name "${rest.slice(0, slash)}" is not valid percent-encoding`);
  }
  return handle(c, rest.slice(slash + 1), queue);
});

publish.all("/publish/*", methodNotAllowed);
publish.all("/publish", methodNotAllowed);
publish.all("/enqueue/*", methodNotAllowed);
