/** Header names and maps as QStash shows them: canonical names, values as string arrays. */

export type HeaderMap = Record<string, string[]>;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The canonical forms of the names seen lately: every answer and request repeats the same few (Content-Type, Date…),
 * and folding a destination's headers, each name built again a character at a time, took 1.7 % of the worker's
 * time under load (bench/profile.mjs).
 * Names up to CANONICAL_NAME_MAX characters are kept; cleared when full.
 */
const canonical = new Map<string, string>();
const CANONICAL_MAX = 2_000;
const CANONICAL_NAME_MAX = 64;

/** `test-header` → `Test-Header`; a name with non-token characters is left as is (Go behaviour). */
export function canonicalName(name: string): string {
  const known = canonical.get(name);
  if (known !== undefined) return known;
  let out = name;
  if (TOKEN.test(name)) {
    out = "";
    let upper = true;
    for (const ch of name) {
      out += upper ? ch.toUpperCase() : ch.toLowerCase();
      upper = ch === "-";
    }
  }
  if (name.length <= CANONICAL_NAME_MAX) {
    if (canonical.size >= CANONICAL_MAX) canonical.clear();
    canonical.set(name, out);
  }
  return out;
}

/** Adds one value under a canonical name. */
export function addHeader(map: HeaderMap, name: string, value: string): void {
  const key = canonicalName(name);
  (map[key] ??= []).push(value);
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"]);

/** A response's headers as a map, without hop-by-hop headers (each value one element: Workers joins repeats). */
export function headersToMap(headers: Headers): HeaderMap {
  const map: HeaderMap = {};
  headers.forEach((value, name) => {
    if (!HOP_BY_HOP.has(name.toLowerCase())) addHeader(map, name, value);
  });
  return map;
}

/**
 * Header pairs as they came off the wire (repeats apart) as the map `headersToMap` gives for a `Headers` object
 * holding them: names folded case-insensitively, repeats joined with ", " (Set-Cookie kept apart), no hop-by-hop
 * headers, leading and trailing whitespace trimmed. The attempt relay's answers come this way, and building a
 * `Headers` object for each cost the worker's thread more than the rest of reading the answer.
 */
export function pairsToMap(pairs: [string, string][]): HeaderMap {
  const joined = new Map<string, string[]>();
  for (const [name, value] of pairs) {
    const lower = name.toLowerCase();
    if (!HOP_BY_HOP.has(lower)) fold(joined, lower, value, false);
  }
  const map: HeaderMap = {};
  for (const [name, value] of sortedPairs(joined)) addHeader(map, name, value);
  return map;
}

/** Adds `value`, trimmed of HTTP whitespace at its ends, under the lowercase `lower`: after the others, or in their place. */
function fold(joined: Map<string, string[]>, lower: string, value: string, replace: boolean): void {
  const v = value.replace(OWS_EDGES, "");
  const list = replace ? undefined : joined.get(lower);
  if (list) list.push(v);
  else joined.set(lower, [v]);
}

/** Folded headers as a `Headers` object iterates them: names sorted, repeats joined with ", ", Set-Cookie kept apart. */
function sortedPairs(joined: Map<string, string[]>): [string, string][] {
  const out: [string, string][] = [];
  for (const lower of [...joined.keys()].sort()) {
    const values = joined.get(lower)!;
    if (lower === "set-cookie") for (const v of values) out.push([lower, v]);
    else out.push([lower, values.join(", ")]);
  }
  return out;
}

/** HTTP whitespace at either end of a header value, which `Headers` drops. */
const OWS_EDGES = /^[\t\n\r ]+|[\t\n\r ]+$/g;

/** Headers that never travel to a destination, whatever the forwarding mode. */
const NEVER_FORWARDED = new Set([
  "authorization",
  "host",
  "content-length",
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "accept-encoding",
  "cf-connecting-ip",
  "cf-ipcountry",
  "cf-ray",
  "cf-visitor",
  "cf-worker",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-real-ip",
]);

/** True for a header `Upstash-Header-Forward: true` may pass on to the destination. */
export function isForwardable(name: string): boolean {
  const lower = name.toLowerCase();
  if (NEVER_FORWARDED.has(lower)) return false;
  if (lower.startsWith("upstash-") || lower.startsWith("cf-") || lower.startsWith("x-forwarded-")) return false;
  return true;
}

/**
 * Why `name: value` cannot travel as an HTTP header, or null when it can: the name must be a token, and the value,
 * once HTTP whitespace at its ends is dropped (as `Headers` drops it), must hold no NUL, CR or LF. `Headers` throws a
 * TypeError for the same inputs.
 */
export function invalidHeader(name: string, value: string): string | null {
  if (!TOKEN.test(name)) return `"${name}" is not a valid HTTP header name`;
  if (/[\0\r\n]/.test(value.replace(OWS_EDGES, ""))) return `the value of ${name} holds a line break or NUL, which an HTTP header cannot carry`;
  return null;
}

/**
 * The pairs a `Headers` object holding `map`, then each of `set` set over it, yields when iterated, built without
 * one: names lowercased and sorted, repeats joined with ", " (Set-Cookie kept apart), whitespace at the ends of values
 * dropped. A delivery's request headers are built this way: a `Headers` object per attempt, spread into pairs, cost
 * the worker's thread about as much as the rest of building the request (the signature included), and every one is
 * a runtime object its collector must sweep.
 * Throws a TypeError, as `Headers` would, for a header that cannot be sent (`invalidHeader`).
 */
export function headerPairs(map: HeaderMap, set: [string, string][]): [string, string][] {
  const joined = new Map<string, string[]>();
  const put = (name: string, value: string, replace: boolean) => {
    const why = invalidHeader(name, value);
    if (why) throw new TypeError(why);
    fold(joined, name.toLowerCase(), value, replace);
  };
  for (const [name, values] of Object.entries(map)) for (const v of values) put(name, v, false);
  for (const [name, value] of set) put(name, value, true);
  return sortedPairs(joined);
}

/** A stored map back into request headers. */
export function mapToHeaders(map: HeaderMap, into: Headers = new Headers()): Headers {
  for (const [name, values] of Object.entries(map)) {
    for (const v of values) into.append(name, v);
  }
  return into;
}
