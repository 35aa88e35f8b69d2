/** Small request helpers shared by the routers. */
import type { Context } from "hono";
import type { AppEnv } from "../app";
import { ApiError, badRequest } from "../core/errors";
import { type FilterRules, type Filters, bodyFilterEntries, namesAFilter, parseFilters } from "../core/filters";

/**
 * Reads a request body, never holding more than `max` bytes: a declared length above it is refused before reading,
 * and a body sent without a length (chunked) is cut off, and refused, as soon as it passes `max`.
 */
export async function readCapped(req: Request, max: number, tooBig: (size: number) => ApiError): Promise<Uint8Array> {
  const headers = req.headers;
  const length = headers.get("content-length");
  const declared = Number(length ?? "0");
  if (declared > max) throw tooBig(declared);
  // A declared length within the cap: the runtime reads exactly that much in one native call (the hot path of
  // every publish; reading chunk by chunk in JS cost a tenth of the isolate's time under load), without making the
  // body's stream object at all.
  if (length !== null && !headers.has("transfer-encoding")) return declared === 0 ? new Uint8Array(0) : new Uint8Array(await req.arrayBuffer());
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw tooBig(size);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

/** The raw body, refused with 413 when above the maximum message size. */
export function readBody(c: Context<AppEnv>, max: number): Promise<Uint8Array> {
  return readCapped(c.req.raw, max, (size) => tooLarge(size, max));
}

function tooLarge(size: number, max: number): ApiError {
  return new ApiError(413, `message body of ${size} bytes exceeds the maximum message size of ${max} bytes (MAX_MESSAGE_SIZE)`);
}

/**
 * The address of whoever called: Cloudflare's CF-Connecting-IP (Miniflare's entry worker adds it too), else
 * X-Real-IP, else LOCAL_CALLER_IP, which `npm start` sets when it serves on a loopback address straight to the worker.
 */
export function callerIp(c: Context<AppEnv>): string | null {
  return c.req.header("cf-connecting-ip") ?? c.req.header("x-real-ip") ?? (c.env.LOCAL_CALLER_IP || null);
}

export function methodNotAllowed(c: Context<AppEnv>): Response {
  return c.json({ error: `method ${c.req.method} is not allowed on ${new URL(c.req.url).pathname}` }, 405);
}

/**
 * URLSearchParams of the request (repeated keys kept): what `new URL(url).searchParams` gives for the runtime's
 * request URL, read from the text after its first "?" without parsing the whole URL (every publish reads it).
 */
export function queryOf(c: Context<AppEnv>): URLSearchParams {
  return queryOfUrl(c.req.url);
}

export function queryOfUrl(url: string): URLSearchParams {
  const at = url.indexOf("?");
  if (at < 0) return new URLSearchParams();
  const hash = url.indexOf("#", at);
  return new URLSearchParams(url.slice(at + 1, hash < 0 ? undefined : hash));
}

/** The request's waitUntil, when the runtime gave the app an execution context. */
export function waitUntilOf(c: Context<AppEnv>): ((p: Promise<unknown>) => void) | undefined {
  try {
    const ctx = c.executionCtx;
    return (p) => ctx.waitUntil(p);
  } catch {
    return undefined;
  }
}

/** The largest JSON body a bulk call may send (500 message ids take about 20 KB). */
const MAX_BULK_BODY = 1 << 20;

/** Query keys that never filter anything, so they may stand next to filters sent in the body. */
function filtersInQuery(query: URLSearchParams): string[] {
  return [...query.keys()].filter((k) => k !== "qstash_token" && !k.toLowerCase().startsWith("upstash-"));
}

/**
 * The filters of a bulk call (cancel, DLQ delete, DLQ retry), read from the query string or from a JSON body,
 * never both. `nothing` is true when the caller named an empty list of ids: the call must then act on nothing.
 * "Everything" is only what a call with no filter in the query and no body asks for; a body that is not JSON,
 * has an unknown field, or names no filter is a 400 and never falls through to that.
 */
export async function bulkFilters(
  c: Context<AppEnv>,
  rules: FilterRules,
  idKeys: readonly string[],
): Promise<{ filters: Filters; nothing: boolean }> {
  const query = queryOf(c);
  const text = new TextDecoder().decode(await readCapped(c.req.raw, MAX_BULK_BODY, bulkTooLarge));
  if (text.trim() === "") return { filters: parseFilters(query, rules), nothing: false };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw badRequest(`the body is not valid JSON; send filters as a JSON object like {"${idKeys[0]}": ["..."]} or in the query string`);
  }
  const inQuery = filtersInQuery(query);
  if (inQuery.length) {
    throw badRequest(`send filters either in the query string or in the JSON body, not both (query has ${inQuery.join(", ")})`);
  }
  const { entries, emptyIds } = bodyFilterEntries(body, idKeys);
  const filters = parseFilters(entries, rules);
  if (!emptyIds && !namesAFilter(filters)) {
    throw badRequest(
      `the body names no filter (${[...rules.allowed, "fromDate", "toDate"].join(", ")}); to act on everything, send no body`,
    );
  }
  return { filters, nothing: emptyIds };
}

function bulkTooLarge(): ApiError {
  return new ApiError(413, `a bulk request body may be at most ${MAX_BULK_BODY} bytes; send fewer ids per call`);
}

/**
 * A management call's JSON body, read with a byte cap (a 413 above it, before parsing), or a 400 that says what
 * shape was expected (`example`).
 */
export async function readJson(c: Context<AppEnv>, maxBytes: number, example: string): Promise<unknown> {
  const bytes = await readCapped(c.req.raw, maxBytes, () => new ApiError(413, `the body may be at most ${maxBytes} bytes`));
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw badRequest(`the body must be JSON like ${example}`);
  }
}
