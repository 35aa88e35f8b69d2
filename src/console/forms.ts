/** Form posts of the console: reading fields, and the flash message shown after the redirect. */
import type { Context } from "hono";
import type { ConsoleEnv } from "./api";

export const FLASH_COOKIE = "boomerang_flash";

/** Ends a form post: the next page shows `text`, and the browser goes to `to` (303, so a reload does not re-post). */
export function done(c: Context<ConsoleEnv>, to: string, kind: "ok" | "error", text: string): Response {
  const value = encodeURIComponent(JSON.stringify({ kind, text: text.slice(0, 500) }));
  c.header("Set-Cookie", `${FLASH_COOKIE}=${value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=60`, { append: true });
  return c.redirect(to, 303);
}

/** The flash message a previous post left, cleared as it is read. */
export function takeFlash(c: Context<ConsoleEnv>): { kind: "ok" | "error"; text: string } | null {
  const raw = /(?:^|;\s*)boomerang_flash=([^;]*)/.exec(c.req.header("cookie") ?? "")?.[1];
  if (!raw) return null;
  c.header("Set-Cookie", `${FLASH_COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0`, { append: true });
  try {
    const v = JSON.parse(decodeURIComponent(raw)) as { kind?: unknown; text?: unknown };
    if ((v.kind === "ok" || v.kind === "error") && typeof v.text === "string") return { kind: v.kind, text: v.text };
  } catch {
    // a damaged cookie shows nothing
  }
  return null;
}

/** Form fields of a post (urlencoded or multipart); repeated names keep every value. */
export async function formOf(c: Context<ConsoleEnv>): Promise<FormData> {
  try {
    return await c.req.raw.clone().formData();
  } catch {
    return new FormData();
  }
}

export function str(f: FormData, name: string): string {
  const v = f.get(name);
  return typeof v === "string" ? v.trim() : "";
}

