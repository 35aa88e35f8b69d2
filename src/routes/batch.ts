/** POST /v2/batch: many publishes and enqueues in one call; each entry succeeds or fails on its own. */
import { Hono } from "hono";
import type { AppEnv } from "../app";
import { settings } from "../config";
import { ApiError, badRequest } from "../core/errors";
import { utf8 } from "../core/encoding";
import { objectConfig } from "../core/spec";
import type { StoredMessage } from "../core/types";
import { type Accepted, commitAccepted, prepareAccept } from "../delivery/accept";
import { type Collector, publishMessage } from "../delivery/publish";
import type { Env } from "../env";
import { callerIp, methodNotAllowed, readCapped, waitUntilOf } from "./common";

export const batch = new Hono<AppEnv>();

const MAX_ENTRIES = 1000;

batch.post("/batch", async (c) => {
  const s = settings(c.env);
  let entries: unknown;
  // The whole batch is held at once: its JSON may be at most the maximum message size plus 1 MiB for the entries'
  // other fields (each entry's body is also checked against the maximum message size on its own).
  const max = s.maxMessageSize + (1 << 20);
  const bytes = await readCapped(c.req.raw, max, (size) => new ApiError(413, `a batch body of ${size} bytes exceeds ${max} bytes (MAX_MESSAGE_SIZE + 1 MiB); send fewer or smaller entries per batch`));
  try {
    entries = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw badRequest('the body must be a JSON array like [{"destination": "https://...", "body": "..."}]');
  }
  if (!Array.isArray(entries)) throw badRequest("the body must be a JSON array of messages");
  if (entries.length > MAX_ENTRIES) throw badRequest(`a batch may have at most ${MAX_ENTRIES} entries, got ${entries.length}`);
  const tenantId = c.get("tenant").id;
  const ip = callerIp(c);
  const out: unknown[] = [];
  const collector = batchCollector(c.env, waitUntilOf(c));
  for (const entry of entries) {
    try {
      if (!entry || typeof entry !== "object" || Array.isArray(entry)) throw badRequest("each entry must be an object");
      const e = entry as Record<string, unknown>;
      if (typeof e.destination !== "string" || e.destination === "") throw badRequest('"destination" must be a non-empty string');
      if (e.body !== undefined && typeof e.body !== "string") throw badRequest('"body" must be a string');
      if (e.queue !== undefined && e.queue !== null && typeof e.queue !== "string") throw badRequest('"queue" must be a string');
      const headers = e.headers ?? {};
      if (typeof headers !== "object" || Array.isArray(headers) || headers === null) throw badRequest('"headers" must be an object');
      const body = utf8((e.body as string | undefined) ?? "");
      if (body.length > s.maxMessageSize) {
        throw new ApiError(413, `message body of ${body.length} bytes exceeds the maximum message size of ${s.maxMessageSize} bytes`);
      }
      const result = await publishMessage(
        c.env,
        {
          tenantId,
          destination: e.destination,
          cfg: objectConfig(headers as Record<string, unknown>),
          body,
          callerIp: ip,
          queueName: typeof e.queue === "string" && e.queue !== "" ? e.queue : null,
          waitUntil: waitUntilOf(c),
          collector,
        },
        Date.now(),
      );
      out.push(result.body);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      // Over the daily quota, the whole batch answers 429 (what the SDKs raise as a rate-limit error) unless
      // earlier entries were accepted: those are stored, and the rest say why they were not.
      if (err.status === 429 && out.every((o) => o && typeof o === "object" && "error" in o)) {
        await collector.flush();
        throw err;
      }
      out.push({ error: err.message });
    }
  }
  // The batch answers only once every accepted entry is stored.
  await collector.flush();
  return c.json(out);
});

/** Flushes when this many messages or body bytes are waiting, so that one D1 batch stays moderate. */
const FLUSH_MESSAGES = 64;
const FLUSH_BYTES = 512 * 1024;

function batchCollector(env: Env, waitUntil: ((p: Promise<unknown>) => void) | undefined): Collector {
  // Entries wait here and are prepared together at the flush: their rows go in as a few multi-row statements.
  let list: StoredMessage[] = [];
  let extras: D1PreparedStatement[] = [];
  let messages = 0;
  let bytes = 0;
  let at = 0;
  const flush = async () => {
    if (list.length === 0 && extras.length === 0) return;
    const item: Accepted = prepareAccept(env, list, at, extras);
    list = [];
    extras = [];
    messages = 0;
    bytes = 0;
    await commitAccepted(item, { shareable: true, waitUntil });
  };
  return {
    async add(more, extra, now) {
      list.push(...more);
      extras.push(...extra);
      at = now;
      messages += more.length;
      for (const m of more) bytes += m.bodyRef ? 0 : m.body.byteLength;
      if (messages >= FLUSH_MESSAGES || bytes >= FLUSH_BYTES) await flush();
    },
    flush,
    pending: () => list.length,
  };
}

batch.all("/batch", methodNotAllowed);
