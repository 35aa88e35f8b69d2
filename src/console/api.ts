/**
 * The console reads and changes everything through the /v2 API itself, called in process with the session's
 * token: the same authentication, read-only rule, burst limit, validation, error messages and audit line as a
 * client's call. There is no second copy of any rule behind the console.
 */
import type { Context } from "hono";
import type { Hono } from "hono";
import type { AppEnv } from "../app";
import type { Env } from "../env";
import type { Session } from "./session";

export type ConsoleEnv = { Bindings: Env; Variables: { session: Session } };

/** The API app, set once by buildApp (the console is mounted inside it). */
let apiApp: Hono<AppEnv> | null = null;
export function setApi(app: Hono<AppEnv>): void {
  apiApp = app;
}

/** A header the console adds to its in-process calls, so their audit lines say where the change was made. */
export const CONSOLE_HEADER = "x-boomerang-console";

export interface ApiAnswer<T = unknown> {
  status: number;
  ok: boolean;
  data: T;
  /** The API's `error` message when the call failed. */
  error: string | null;
}

export interface CallOptions {
  query?: URLSearchParams | Record<string, string | undefined>;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

function searchOf(q: CallOptions["query"]): string {
  if (!q) return "";
  const p = q instanceof URLSearchParams ? q : new URLSearchParams(Object.entries(q).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ""));
  const s = p.toString();
  return s ? `?${s}` : "";
}

export async function callApi<T = unknown>(c: Context<ConsoleEnv>, method: string, path: string, opts: CallOptions = {}): Promise<ApiAnswer<T>> {
  if (!apiApp) throw new Error("the console is not mounted in the API app");
  const session = c.get("session");
  const url = new URL(path + searchOf(opts.query), c.req.url);
  const headers = new Headers(opts.headers);
  headers.set("authorization", `Bearer ${session.token}`);
  headers.set(CONSOLE_HEADER, "1");
  const req = new Request(url, { method, headers, body: opts.body ?? null });
  let ctx: ExecutionContext | undefined;
  try {
    ctx = c.executionCtx;
  } catch {
    ctx = undefined;
  }
  const res = await apiApp.fetch(req, c.env, ctx);
  const text = await res.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  const error = !res.ok ? (data && typeof data === "object" && "error" in data ? String((data as { error: unknown }).error) : `HTTP ${res.status}`) : null;
  return { status: res.status, ok: res.ok, data: data as T, error };
}

/** Like callApi, but a failed read throws: pages cannot render without their data. */
export async function readApi<T = unknown>(c: Context<ConsoleEnv>, path: string, query?: CallOptions["query"]): Promise<T> {
  const r = await callApi<T>(c, "GET", path, { query });
  if (!r.ok) throw new ConsoleError(r.status, r.error ?? `HTTP ${r.status}`);
  return r.data;
}

export class ConsoleError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
