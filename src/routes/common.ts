/** Small request helpers shared by the routers. */
import type { Context } from "hono";
import type { AppEnv } from "../app";
import { ApiError } from "../core/errors";

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
