/**
 * Large bodies in R2. A message body, stored response body or callback payload above `inlineBodyMax` bytes is
 * put in the BODIES bucket under "<tenant>/<sha256 hex of the bytes>", and its row keeps that key (`body_ref`,
 * `response_body_ref`) with the blob column NULL. D1 rows stay small and never reach D1's 2 MB value limit.
 *
 * Keys are content addresses within a tenant: the messages of one fan-out, a DLQ retry and its original, a schedule
 * and what it fires all share one object. A response body's key also names its message
 * ("<tenant>/<sha256 hex>.<message id>"): log entries live in the message's row as JSON, where no index can find
 * a key, so such an object is in use while its message (or a DLQ entry naming the key) exists. Objects are never
 * overwritten with other bytes, so a key is valid as long as it exists; the sweeper deletes it once no row refers
 * to it any more (`deleteUnreferenced`).
 */
import { sha256Hex } from "../core/encoding";
import type { Env } from "../env";
import type { StoredMessage } from "../core/types";
import { primaryDb, shardEnv, tenantShard } from "./shards";

/** An object put less than this long ago is never deleted: the row that will refer to it may not be written yet. */
export const FRESH_OBJECT_MS = 60 * 60_000;

/** Stores `bytes` in R2 when they are above the inline limit; returns the key, or null to keep them inline. */
export async function spill(env: Env, inlineMax: number, tenantId: string, bytes: Uint8Array): Promise<string | null> {
  if (bytes.byteLength <= inlineMax) return null;
  const key = `${tenantId}/${await sha256Hex(bytes)}`;
  // A put of an existing key rewrites the same bytes and refreshes its upload time, which keeps the sweeper away
  // from it until this row is written (FRESH_OBJECT_MS).
  await env.BODIES.put(key, bytes);
  return key;
}

/** Stores a response body of message `m` in R2 when it is above `inlineMax`; returns the key, or null. */
export async function spillResponse(env: Env, inlineMax: number, m: { tenantId: string; id: string }, bytes: Uint8Array): Promise<string | null> {
  if (bytes.byteLength <= inlineMax || bytes.byteLength === 0) return null;
  const key = `${m.tenantId}/${await sha256Hex(bytes)}.${m.id}`;
  await env.BODIES.put(key, bytes);
  return key;
}

/** The message a response body's key names, if it names one. */
const messageOfKey = (key: string): string | null => /\.(msg_[0-9A-Za-z_]+)$/.exec(key)?.[1] ?? null;
/** A workflow history element's object: "<tenant>/wf/<run id>/<message id>", used while its run's row exists. */
const runOfKey = (key: string): [string, string] | null => {
  const m = /^([^/]+)\/wf\/([^/]+)\/[^/]+$/.exec(key);
  return m ? [m[1], m[2]] : null;
};

/** Puts a large workflow history element in the bucket (src/workflow/publish.ts); returns its key. */
export async function putRunStep(env: Env, tenantId: string, runId: string, messageId: string, bytes: Uint8Array): Promise<string> {
  const key = `${tenantId}/wf/${runId}/${messageId}`;
  await env.BODIES.put(key, bytes);
  return key;
}

/**
 * Spills the large bodies of messages about to be inserted (sets `bodyRef`; `body` stays in memory for use by
 * this invocation). Messages that share one body array (a fan-out) share one put.
 */
export async function spillMessages(env: Env, inlineMax: number, messages: StoredMessage[]): Promise<void> {
  const done = new Map<Uint8Array, Promise<string | null>>();
  await Promise.all(
    messages.map(async (m) => {
      if (m.bodyRef || m.body.byteLength <= inlineMax) return;
      let put = done.get(m.body);
      if (!put) {
        put = spill(env, inlineMax, m.tenantId, m.body);
        done.set(m.body, put);
      }
      m.bodyRef = await put;
    }),
  );
}

/** The bytes behind a key. A missing object is an error: rows refer only to objects that exist. */
export async function loadBlob(env: Env, key: string): Promise<Uint8Array> {
  const obj = await env.BODIES.get(key);
  if (!obj) throw new Error(`stored body ${key} is missing from the BODIES bucket`);
  return new Uint8Array(await obj.arrayBuffer());
}

/** The first `max` bytes behind a key, and the object's whole size. */
async function loadBlobHead(env: Env, key: string, max: number): Promise<{ bytes: Uint8Array; size: number }> {
  const obj = await env.BODIES.get(key, { range: { offset: 0, length: max } });
  if (!obj) throw new Error(`stored body ${key} is missing from the BODIES bucket`);
  return { bytes: new Uint8Array(await obj.arrayBuffer()), size: obj.size };
}

/**
 * Loads, for each item whose `keyOf` names an R2 object, the bytes into it with `set` (each key read once). With
 * `cap`, at most that many bytes of each object are read, and `set` learns the object's whole size.
 */
async function loadEach<T>(
  env: Env,
  items: Iterable<T>,
  keyOf: (item: T) => string | null,
  set: (item: T, bytes: Uint8Array, size: number) => void,
  cap?: number,
) {
  const loads = new Map<string, Promise<{ bytes: Uint8Array; size: number }>>();
  const waits: Promise<void>[] = [];
  for (const item of items) {
    const key = keyOf(item);
    if (!key) continue;
    let load = loads.get(key);
    if (!load) {
      load = cap === undefined ? loadBlob(env, key).then((bytes) => ({ bytes, size: bytes.byteLength })) : loadBlobHead(env, key, cap);
      loads.set(key, load);
    }
    waits.push(load.then(({ bytes, size }) => set(item, bytes, size)));
  }
  await Promise.all(waits);
}

/**
 * Reads the bodies of messages loaded from rows that refer to R2. With `cap` (list pages), at most that many bytes
 * each; a message whose body was cut gets `bodyTotal`, its whole size.
 */
export function loadMessageBodies(env: Env, messages: Iterable<StoredMessage>, cap?: number): Promise<void> {
  return loadEach(
    env,
    messages,
    (m) => (m.body.byteLength > 0 ? null : m.bodyRef),
    (m, bytes, size) => {
      m.body = bytes;
      if (size > bytes.byteLength) m.bodyTotal = size;
    },
    cap,
  );
}

/** Reads the response bodies of log or DLQ entries that refer to R2 (with `cap`, as `loadMessageBodies`). */
export function loadResponseBodies(
  env: Env,
  entries: Iterable<{ responseBody: Uint8Array | null; responseBodyRef: string | null; responseBodyTotal?: number }>,
  cap?: number,
): Promise<void> {
  return loadEach(
    env,
    entries,
    (e) => e.responseBodyRef,
    (e, bytes, size) => {
      e.responseBody = bytes;
      if (size > bytes.byteLength) e.responseBodyTotal = size;
    },
    cap,
  );
}

/**
 * Deletes the objects among `keys` that no row refers to any more and that were not put in the last
 * FRESH_OBJECT_MS. Returns how many were deleted.
 */
export async function deleteUnreferenced(env: Env, keys: Iterable<string>, now: number): Promise<number> {
  const candidates = [...new Set(keys)];
  if (candidates.length === 0) return 0;
  const list = JSON.stringify(candidates);
  const owners = JSON.stringify(candidates.flatMap((k) => (messageOfKey(k) ? [[k, messageOfKey(k)]] : [])));
  const runs = JSON.stringify(candidates.flatMap((k) => (runOfKey(k) ? [[k, ...runOfKey(k)!]] : [])));
  const { results } = await env.DB.prepare(
    `SELECT body_ref AS k FROM messages WHERE body_ref IN (SELECT value FROM json_each(?1))
     UNION SELECT body_ref FROM schedules WHERE body_ref IN (SELECT value FROM json_each(?1))
     UNION SELECT response_body_ref FROM dlq WHERE response_body_ref IN (SELECT value FROM json_each(?1))
     UNION SELECT o.value ->> '$[0]' FROM json_each(?2) o JOIN messages m ON m.id = o.value ->> '$[1]'
     UNION SELECT r.ref FROM legacy_response_refs r JOIN messages m ON m.id = r.message_id
       WHERE r.ref IN (SELECT value FROM json_each(?1))`,
  )
    .bind(list, owners)
    .all<{ k: string }>();
  const used = new Set(results.map((r) => r.k));
  // D1 allows five terms in a compound SELECT: the objects of workflow runs are asked for on their own.
  if (runs !== "[]") {
    const inRuns = await env.DB.prepare(
      `SELECT o.value ->> '$[0]' AS k FROM json_each(?1) o
       JOIN workflow_runs w ON w.tenant_id = o.value ->> '$[1]' AND w.run_id = o.value ->> '$[2]'`,
    )
      .bind(runs)
      .all<{ k: string }>();
    for (const r of inRuns.results) used.add(r.k);
  }
  const unused = candidates.filter((k) => !used.has(k));
  const old: string[] = [];
  for (const key of unused) {
    const head = await env.BODIES.head(key);
    if (head && now - head.uploaded.getTime() >= FRESH_OBJECT_MS) old.push(key);
  }
  // R2 deletes at most 1,000 keys per call.
  for (let i = 0; i < old.length; i += 1000) await env.BODIES.delete(old.slice(i, i + 1000));
  return old.length;
}

/** Objects listed per sweep by the orphan walk. */
const ORPHAN_PAGE = 1000;

/**
 * The slow walk over the whole bucket that catches what pruning cannot: an object put for a row that was never
 * written (a crash between the put and the D1 write), or whose last row went away while the object was fresh. Each
 * call lists one page after the cursor kept in the primary (`sweeper_state`), and deletes the page's objects that
 * no row of their tenant's shard refers to and that were put over FRESH_OBJECT_MS ago. At the end of the bucket it
 * starts over. With `prefix` (one tenant's objects, `<tenant id>/`) it walks that prefix's first page instead and
 * leaves the cursor alone. Returns how many objects it deleted.
 */
export async function collectOrphans(env: Env, now: number, prefix?: string): Promise<number> {
  const primary = primaryDb(env);
  const state = prefix ? null : await primary.prepare("SELECT value FROM sweeper_state WHERE name = 'r2_cursor'").first<{ value: string }>();
  const page = await env.BODIES.list({ limit: ORPHAN_PAGE, cursor: state?.value || undefined, prefix });
  const byShard = new Map<number, string[]>();
  for (const obj of page.objects) {
    if (now - obj.uploaded.getTime() < FRESH_OBJECT_MS) continue;
    const tenantId = obj.key.slice(0, obj.key.indexOf("/"));
    const shard = await tenantShard(env, tenantId);
    (byShard.get(shard) ?? byShard.set(shard, []).get(shard)!).push(obj.key);
  }
  let deleted = 0;
  for (const [shard, keys] of byShard) deleted += await deleteUnreferenced(shardEnv(env, shard), keys, now);
  if (prefix) return deleted;
  const next = page.truncated ? page.cursor : "";
  await primary
    .prepare("INSERT INTO sweeper_state (name, value) VALUES ('r2_cursor', ?1) ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE value <> excluded.value")
    .bind(next)
    .run();
  return deleted;
}
