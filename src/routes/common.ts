/** Small request helpers shared by the routers. */
import type { Context } from "hono";
import type { AppEnv } from "../app";
import { ApiError, badRequest } from "../core/errors";
import { type FilterRules, type Filters, bodyFilterEntries, namesAFilter, parseFilters } from "../core/filters";

/** The raw body, refused with 413 when above the maximum message size. */
export async function readBody(c: Context<AppEnv>, max: number): Promise<Uint8Array> {
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > max) throw tooLarge(declared, max);
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.length > max) throw tooLarge(bytes.length, max);
  return bytes;
}

function tooLarge(size: number, max: number): ApiError {
  return new ApiError(413, `message body of ${size} bytes exceeds the maximum message size of ${max} bytes (MAX_MESSAGE_SIZE)`);
}

export function callerIp(c: Context<AppEnv>): string | null {
  return c.req.header("cf-connecting-ip") ?? c.req.header("x-real-ip") ?? null;
}

export function methodNotAllowed(c: Context<AppEnv>): Response {
  return c.json({ error: `method ${c.req.method} is not allowed on ${new URL(c.req.url).pathname}` }, 405);
}

/** URLSearchParams of the request (repeated keys kept). */
export function queryOf(c: Context<AppEnv>): URLSearchParams {
  return new URL(c.req.url).searchParams;
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
  if (Number(c.req.header("content-length") ?? "0") > MAX_BULK_BODY) throw bulkTooLarge();
  const text = await c.req.text();
  if (text.length > MAX_BULK_BODY) throw bulkTooLarge();
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
  const tooBig = () => new ApiError(413, `the body may be at most ${maxBytes} bytes`);
  if (Number(c.req.header("content-length") ?? "0") > maxBytes) throw tooBig();
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.length > maxBytes) throw tooBig();
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw badRequest(`the body must be JSON like ${example}`);
  }
}
