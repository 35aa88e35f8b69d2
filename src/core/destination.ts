/** Destinations: taken from the raw request path, query config stripped, classified, checked. */
import ipaddr from "ipaddr.js";
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

/**
 * Whether a host must not be called while private destinations are off: names of the local machine or network
 * (`localhost`, `*.localhost`, `*.local`, `*.internal`), and every IP address that is not plain public unicast as
 * classified by ipaddr.js (loopback, private, link-local, CGNAT, benchmarking, reserved, multicast, unique-local,
 * site-local…). IPv6 forms that carry an IPv4 address (mapped, IPv4-compatible, NAT64, SIIT, 6to4) are judged by
 * that IPv4 address; Teredo, whose client address is hidden, is refused.
 */
export function isPrivateHost(hostname: string): boolean {
  // "localhost." is the fully qualified spelling of "localhost": drop trailing dots before comparing.
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.+$/, "");
  if (host === "localhost" || host.endsWith(".localhost") || host.endsWith(".local") || host.endsWith(".internal")) {
    return true;
  }
  if (ipaddr.IPv4.isValidFourPartDecimal(host)) return !isPublicV4(ipaddr.IPv4.parse(host));
  if (host.includes(":")) {
    if (!ipaddr.IPv6.isValid(host)) return true; // not an address the URL parser would let through: refuse
    return !isPublicV6(ipaddr.IPv6.parse(host));
  }
  // Any other all-numeric or hex form never reaches here: the URL parser writes IPv4 hosts as four decimals.
  return false;
}

function isPublicV4(a: ipaddr.IPv4): boolean {
  return a.range() === "unicast";
}

function isPublicV6(a: ipaddr.IPv6): boolean {
  const p = a.parts;
  const v4 = (hi: number, lo: number) => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  switch (a.range()) {
    case "unicast":
      // ::a.b.c.d (IPv4-compatible, deprecated) is "unicast" to the library: judge the IPv4 address it carries.
      if (p[0] === 0 && p[1] === 0 && p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0) return isPublicV4(v4(p[6], p[7]));
      return true;
    case "ipv4Mapped":
    case "rfc6145":
      return isPublicV4(v4(p[6], p[7]));
    case "rfc6052":
      // 64:ff9b::/96 embeds an IPv4 address; 64:ff9b:1::/48 is for local use only.
      return p[1] === 0xff9b && p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0 && isPublicV4(v4(p[6], p[7]));
    case "6to4":
      return isPublicV4(v4(p[1], p[2]));
    default:
      return false;
  }
}
