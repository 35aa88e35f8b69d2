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

/** The shard a message id names: `msg_<n>_…` for shard n ≥ 1; any other id is shard 0. */
export function shardOfId(id: string): number {
  const m = /^msg_(\d{1,4})_/.exec(id);
  return m ? Number(m[1]) : 0;
}

/** A message id; ids of shard n ≥ 1 start `msg_<n>_` (src/db/shards.ts), shard 0 keeps the plain form. */
export const newMessageId = (shard = 0): string => (shard === 0 ? "msg_" : `msg_${shard}_`) + randomString(26, BASE62);
/**
 * The id of the message that retries a DLQ entry: derived from the tenant and the entry, so that two concurrent
 * retries of one entry write the same message (the second insert is skipped) and it is delivered once.
 */
export async function dlqRetryMessageId(shard: number, tenantId: string, dlqId: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`dlq-retry:${tenantId}:${dlqId}`)));
  let tail = "";
  for (let i = 0; i < 26; i++) tail += BASE62[digest[i] % 62];
  return (shard === 0 ? "msg_" : `msg_${shard}_`) + tail;
}
export const newSigningKey = (): string => "sig_" + randomString(28, BASE58);
export const newJwtId = (): string => "jwt_" + randomString(22, BASE62);
export const newScheduleId = (): string => "scd_" + randomString(22, BASE62);
export const newToken = (): string => randomString(48, BASE62);
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
