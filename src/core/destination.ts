/** Destinations: taken from the raw request path, query config stripped, classified, checked. */
import { badRequest } from "./errors";
import { NAME_RE } from "./ids";

export type Destination = { kind: "url"; url: string } | { kind: "group"; name: string };

const INVALID_SCHEME = "invalid destination url: endpoint has invalid scheme, add http:// or https://";

/** True for query keys that configure Boomerang rather than belong to the destination. */
export function isConfigQueryKey(rawKey: string): boolean {
  let key = rawKey;
  try {
    key = decodeURIComponent(rawKey.replace(/\+/g, " "));
  } catch {
    // keep the raw key: a malformed escape is not a config key
  }
  return key === "qstash_token" || key.startsWith("upstash-");
}

/**
 * Splits a raw request URL into the destination that follows `prefix` (e.g. "/v2/publish/") and
 * rebuilds its query string from the request's, without Boomerang's own config keys.
 * Nothing is percent-decoded or collapsed: the destination is stored exactly as sent.
 */
export function destinationFromRawUrl(rawUrl: string, prefix: string): string {
  const schemeEnd = rawUrl.indexOf("://");
  const pathStart = rawUrl.indexOf("/", schemeEnd + 3);
  const pathAndQuery = pathStart < 0 ? "/" : rawUrl.slice(pathStart);
  const hash = pathAndQuery.indexOf("#");
  const noHash = hash < 0 ? pathAndQuery : pathAndQuery.slice(0, hash);
  const q = noHash.indexOf("?");
  const path = q < 0 ? noHash : noHash.slice(0, q);
  const query = q < 0 ? "" : noHash.slice(q + 1);
  // The resource segment may arrive in another case (the Go SDK sends /v2/Schedules/); a request URL is ASCII.
  const at = path.toLowerCase().indexOf(prefix.toLowerCase());
  const rest = at < 0 ? "" : path.slice(at + prefix.length);
  const kept = query
    .split("&")
    .filter((part) => part !== "" && !isConfigQueryKey(part.split("=")[0]));
  return kept.length > 0 ? `${rest}?${kept.join("&")}` : rest;
}

/** Classifies and validates a destination (URL or URL-group name). */
export function classifyDestination(raw: string, allowPrivate: boolean): Destination {
  let value = raw.trim();
  if (value === "") throw badRequest(`${INVALID_SCHEME}: the destination is empty`);
  // Proxies may collapse "https://" into "https:/".
  value = value.replace(/^(https?):\/(?!\/)/i, "$1://");
  if (/^https?:\/\//i.test(value)) {
    return { kind: "url", url: checkUrl(value, allowPrivate, "destination") };
  }
  if (value === "api/llm" || value.startsWith("api/")) {
    throw badRequest(`${INVALID_SCHEME}: "${value}" (the LLM API is not supported)`);
  }
  if (NAME_RE.test(value)) return { kind: "group", name: value };
  throw badRequest(`${INVALID_SCHEME}: got "${truncate(value)}"`);
}

/** Checks an absolute http(s) URL and returns it unchanged. `what` names it in errors. */
export function checkUrl(value: string, allowPrivate: boolean, what: string): string {
  if (!/^https?:\/\//i.test(value)) {
    throw badRequest(`invalid ${what} url: endpoint has invalid scheme, add http:// or https://: got "${truncate(value)}"`);
  }
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw badRequest(`invalid ${what} url: "${truncate(value)}" is not a valid URL`);
  }
  if (parsed.hostname === "") throw badRequest(`invalid ${what} url: "${truncate(value)}" has no host`);
  if (!allowPrivate && isPrivateHost(parsed.hostname)) {
    throw badRequest(
      `invalid ${what} url: ${parsed.hostname} is a loopback, private or link-local address; ` +
        "set ALLOW_PRIVATE_DESTINATIONS=true to allow it",
    );
  }
  return value;
}

function truncate(s: string): string {
  return s.length > 200 ? s.slice(0, 200) + "…" : s;
}

/** Loopback, private, link-local, CGNAT and unspecified addresses, and localhost names. */
export function isPrivateHost(hostname: string): boolean {
  // "localhost." is the fully qualified spelling of "localhost": drop trailing dots before comparing.
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.+$/, "");
  if (host === "localhost" || host.endsWith(".localhost") || host.endsWith(".local") || host.endsWith(".internal")) {
    return true;
  }
  const v4 = parseIPv4(host);
  if (v4) return isPrivateV4(v4);
  if (host.includes(":")) return isPrivateV6(host);
  return false;
}

function parseIPv4(host: string): number[] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  return parts.every((p) => p <= 255) ? parts : null;
}

function isPrivateV4([a, b]: number[]): boolean {
  return (
    a === 0 ||
    a === 10 ||
    a === 127 ||
    (a === 100 && b >= 64 && b <= 127) ||
    (a === 169 && b === 254) ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    a >= 224
  );
}

function isPrivateV6(host: string): boolean {
  if (host === "::" || host === "::1") return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  if (mapped) {
    const v4 = parseIPv4(mapped[1]);
    return v4 ? isPrivateV4(v4) : true;
  }
  // IPv4-mapped and IPv4-compatible forms as the URL parser writes them (::ffff:7f00:1, ::7f00:1), and NAT64.
  if (/^::(ffff:)?[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(host)) return true;
  if (host.startsWith("64:ff9b:")) return true;
  const first = parseInt(host.split(":")[0] || "0", 16);
  return (first & 0xfe00) === 0xfc00 || (first & 0xffc0) === 0xfe80 || (first & 0xff00) === 0xff00;
}
