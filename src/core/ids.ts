/** Identifiers: message ids, signing keys, JWT ids, DLQ ids. */

const BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** Uniformly random characters from an alphabet (rejection sampling, CSPRNG). */
export function randomString(length: number, alphabet: string): string {
  const limit = 256 - (256 % alphabet.length);
  let out = "";
  while (out.length < length) {
    const buf = crypto.getRandomValues(new Uint8Array(length * 2));
    for (const b of buf) {
      if (b < limit) out += alphabet[b % alphabet.length];
      if (out.length === length) break;
    }
  }
  return out;
}

/**
 * The shard a message id names: `msg_<time>…` is shard 0, `msg_<time><n>_…` shard n ≥ 1. Ids made before ids
 * carried a time (`msg_<n>_…`, or a plain `msg_…` in shard 0) are read the same way.
 */
export function shardOfId(id: string): number {
  const m = /^msg_(?:[0-9A-Za-z]{7})?(\d{1,4})_/.exec(id);
  return m ? Number(m[1]) : 0;
}

/** Characters of the time at the start of a message id: base62 of Unix ms, enough until the year 2081. */
const TIME_CHARS = 7;

/** Unix ms as TIME_CHARS base62 characters, which sort (as bytes) in time order. */
export function timeChars(ms: number): string {
  let n = Math.max(0, Math.floor(ms));
  let out = "";
  for (let i = 0; i < TIME_CHARS; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** The time a message id starts with (meaningful for ids made by newMessageId or the derived ids below). */
export function timeOfId(id: string): number {
  let n = 0;
  for (const ch of id.slice(4, 4 + TIME_CHARS)) n = n * 62 + Math.max(0, BASE62.indexOf(ch));
  return n;
}

/** The smallest id made at `ms` or later, in every shard: ids below it were made before `ms`. */
export const idFloor = (ms: number): string => "msg_" + timeChars(ms);

const idHead = (ms: number, shard: number): string => "msg_" + timeChars(ms) + (shard === 0 ? "" : `${shard}_`);

/**
 * A message id: the time it was made, then randomness, so that ids sort by creation time (the sweeper walks recent
 * ids, docs/storage.md). Ids of shard n ≥ 1 carry `<n>_` after the time (src/db/shards.ts).
 */
export const newMessageId = (shard = 0, now = Date.now()): string => idHead(now, shard) + randomString(19, BASE62);

/** A message id derived from a seed (the same seed gives the same id), made at `ms`. */
export async function derivedMessageId(shard: number, ms: number, seed: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(seed)));
  let tail = "";
  for (let i = 0; i < 19; i++) tail += BASE62[digest[i] % 62];
  return idHead(ms, shard) + tail;
}

/**
 * The id of the message that retries a DLQ entry: derived from the tenant and the entry, so that two concurrent
 * retries of one entry write the same message (the second insert is skipped) and it is delivered once. Its time is
 * the entry's.
 */
export function dlqRetryMessageId(shard: number, tenantId: string, dlqId: string): Promise<string> {
  return derivedMessageId(shard, Number(dlqId.split("-")[0]) || 0, `dlq-retry:${tenantId}:${dlqId}`);
}
export const newSigningKey = (): string => "sig_" + randomString(28, BASE58);
export const newJwtId = (): string => "jwt_" + randomString(22, BASE62);
export const newScheduleId = (): string => "scd_" + randomString(22, BASE62);
/**
 * A tenant token: base64 of `{"UserID": <tenant id>, "Password": <40 random characters>}`, the shape of QStash's
 * own tokens. The Workflow SDK reads the UserID from the token to build webhook URLs (createWebhook); the server
 * only ever compares the token's SHA-256.
 */
export const newToken = (tenantId: string): string => btoa(JSON.stringify({ UserID: tenantId, Password: randomString(40, BASE62) }));
export const newTenantId = (): string => "tnt_" + randomString(20, BASE62);

/**
 * `<unixMillis>-<n>`: the stream-entry style DLQ id. Twelve random digits, so that two entries of one millisecond
 * practically never collide on the unique index (a collision would fail the whole shared outcome batch).
 */
export function newDlqId(now: number): string {
  return `${now}-${randomString(12, "0123456789")}`.replace(/-0+(?=\d)/, "-");
}

/** Queue names, schedule ids, URL-group and endpoint names; "." and ".." are refused (URLs drop them as dot segments). */
export const NAME_RE = /^(?!\.{1,2}$)[A-Za-z0-9._-]+$/;
