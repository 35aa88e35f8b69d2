/**
 * Console sessions. The session cookie holds the tenant token the user signed in with: `HttpOnly` (no script can
 * read it), `SameSite=Strict` (no other site's page sends it), `Secure` everywhere but plain HTTP on a loopback
 * address, scoped to /console, for 12 hours. Nothing is stored on the server, so signing in writes no row, and a
 * token that stops resolving ends every session made with it at the next request.
 *
 * Every change is also checked against CSRF: a form carries `_csrf`, an HMAC of a fixed label keyed with the
 * token, which a page of another origin cannot compute; and a request whose `Origin` is another origin is refused.
 */
import { bytesToBase64, utf8 } from "../core/encoding";
import { resolveToken, type Tenant } from "../db/tenants";

export const SESSION_COOKIE = "boomerang_session";
export const SESSION_SECONDS = 12 * 3600;

export interface Session {
  token: string;
  tenant: Tenant;
  /** The value every form of this session carries in `_csrf`. */
  csrf: string;
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || hostname === "::1" || /^127\./.test(hostname);
}

/** The Set-Cookie value that starts a session (or ends it, with `token` null). */
export function sessionCookie(requestUrl: string, token: string | null): string {
  const url = new URL(requestUrl);
  const parts = [`${SESSION_COOKIE}=${token === null ? "" : encodeURIComponent(token)}`, "Path=/console", "HttpOnly", "SameSite=Strict"];
  if (url.protocol === "https:" || !isLoopback(url.hostname)) parts.push("Secure");
  parts.push(token === null ? "Max-Age=0" : `Max-Age=${SESSION_SECONDS}`);
  return parts.join("; ");
}

export function cookieValue(header: string | undefined | null, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return null;
      }
    }
  }
  return null;
}

export async function csrfToken(token: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", utf8(token), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8("boomerang console csrf v1")));
  return bytesToBase64(mac).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The session of a request, or null when it has no cookie or its token no longer resolves. */
export async function readSession(db: D1Database, cookieHeader: string | undefined, devMode: boolean): Promise<Session | null> {
  const token = cookieValue(cookieHeader, SESSION_COOKIE);
  if (!token) return null;
  const tenant = await resolveToken(db, token, devMode);
  if (!tenant) return null;
  return { token, tenant, csrf: await csrfToken(token) };
}

/** Constant-time string comparison (for the CSRF value). */
export function sameString(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * Why a changing request must be refused, or null when it passes: a foreign `Origin` (or, without one, a foreign
 * `Referer`), or a missing or wrong `_csrf` value.
 */
export function csrfProblem(request: Request, session: Session, sent: string | null): string | null {
  const own = new URL(request.url).origin;
  const origin = request.headers.get("origin");
  if (origin && origin !== "null" && origin !== own) return `this request came from another site (${origin})`;
  if (origin === "null") return "this request came from an opaque origin";
  if (!origin) {
    const referer = request.headers.get("referer");
    if (referer) {
      try {
        if (new URL(referer).origin !== own) return "this request came from another site";
      } catch {
        return "this request has an unreadable Referer";
      }
    }
  }
  if (!sent) return "the form carries no CSRF token; reload the page and try again";
  if (!sameString(sent, session.csrf)) return "the form's CSRF token does not match this session; reload the page and try again";
  return null;
}
