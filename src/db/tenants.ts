/** Tenants, their API tokens (hashed) and their signing keys; the four public dev tenants. */
import { sha256Hex } from "../core/encoding";
import { newSigningKey, newTenantId, newToken } from "../core/ids";
import type { Env } from "../env";
import { chooseShard, primaryDb, shardEnv } from "./shards";

export interface Tenant {
  id: string;
  readOnly: boolean;
  /** The D1 shard that holds the tenant's data (src/db/shards.ts). */
  shard: number;
}

/** The official QStash dev server's public credentials (contract §1.2.1). */
export const DEV_TENANTS = [
  {
    id: "dev-default",
    name: "defaultUser",
    token: "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=",
    current: "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r",
    next: "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs",
  },
  {
    id: "dev-test-1",
    name: "testUser1",
    token: "eyJVc2VySUQiOiJ0ZXN0VXNlcjEiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9",
    current: "sig_7GVPjvuwsfqF65iC8fSrs1dfYruM",
    next: "sig_5NoELc3EFnZn4DVS5bDs2Nk4b7Ua",
  },
  {
    id: "dev-test-2",
    name: "testUser2",
    token: "eyJVc2VySUQiOiJ0ZXN0VXNlcjIiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9",
    current: "sig_6jWGaWRxHsw4vMSPJprXadyvrybF",
    next: "sig_7qHbvhmahe5GwfePDiS5Lg3pi6Qx",
  },
  {
    id: "dev-test-3",
    name: "testUser3",
    token: "eyJVc2VySUQiOiJ0ZXN0VXNlcjMiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9",
    current: "sig_5T8FcSsynBjn9mMLBsXhpacRovJf",
    next: "sig_7GFR4YaDshFcqsxWRZpRB161jguD",
  },
] as const;

const DEV_IDS: Set<string> = new Set(DEV_TENANTS.map((t) => t.id));

/** Creates the dev tenants if they are missing (idempotent). */
export async function ensureDevTenants(db: D1Database, now: number): Promise<void> {
  const stmts: D1PreparedStatement[] = [];
  for (const t of DEV_TENANTS) {
    stmts.push(
      db.prepare("INSERT OR IGNORE INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)").bind(t.id, t.name, now),
      db
        .prepare("INSERT OR IGNORE INTO tokens (token_hash, tenant_id, read_only, created_at) VALUES (?1, ?2, 0, ?3)")
        .bind(await sha256Hex(t.token), t.id, now),
      db
        .prepare("INSERT OR IGNORE INTO signing_keys (tenant_id, current_key, next_key, updated_at) VALUES (?1, ?2, ?3, ?4)")
        .bind(t.id, t.current, t.next, now),
    );
  }
  await db.batch(stmts);
}

function equalConstantTime(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * The tenant a token belongs to, or null. Only the SHA-256 of the token is looked up and compared
 * (in constant time); dev tenants are refused outside dev mode.
 */
export async function resolveToken(db: D1Database, token: string, devMode: boolean): Promise<Tenant | null> {
  const now = Date.now();
  // Keyed by the token as sent: a hit needs no hash (the isolate holds the token in memory for the request anyway).
  const hit = tokenCache.get(token);
  if (hit && hit.until > now) return !devMode && DEV_IDS.has(hit.tenant.id) ? null : hit.tenant;
  const tenant = await lookupToken(db, await sha256Hex(token), devMode);
  // Only known tokens are cached, so a flood of wrong tokens cannot grow the cache.
  if (tenant) {
    if (tokenCache.size >= TOKEN_CACHE_MAX) tokenCache.clear();
    tokenCache.set(token, { tenant, until: now + TOKEN_CACHE_MS });
  }
  return tenant;
}

/**
 * Known tokens per isolate for a few seconds: saves a D1 read on every API call (the publish hot path).
 * A token added later is seen at once (misses are not cached); tokens are never revoked today.
 */
const TOKEN_CACHE_MS = 10_000;
const TOKEN_CACHE_MAX = 10_000;
const tokenCache = new Map<string, { tenant: Tenant; until: number }>();

async function lookupToken(db: D1Database, hash: string, devMode: boolean): Promise<Tenant | null> {
  const row = await db
    .prepare(
      `SELECT k.token_hash, k.tenant_id, k.read_only, t.shard FROM tokens k JOIN tenants t ON t.id = k.tenant_id
       WHERE k.token_hash = ?1`,
    )
    .bind(hash)
    .first<{ token_hash: string; tenant_id: string; read_only: number; shard: number }>();
  if (!row || !equalConstantTime(row.token_hash, hash)) return null;
  if (!devMode && DEV_IDS.has(row.tenant_id)) return null;
  return { id: row.tenant_id, readOnly: row.read_only === 1, shard: Number(row.shard) };
}

export async function getKeys(db: D1Database, tenantId: string): Promise<{ current: string; next: string } | null> {
  const row = await db
    .prepare("SELECT current_key, next_key FROM signing_keys WHERE tenant_id = ?1")
    .bind(tenantId)
    .first<{ current_key: string; next_key: string }>();
  return row ? { current: row.current_key, next: row.next_key } : null;
}

/** next becomes current and a fresh next is made, atomically (one conditional UPDATE). */
export async function rotateKeys(db: D1Database, tenantId: string, now: number): Promise<{ current: string; next: string }> {
  const fresh = newSigningKey();
  const row = await db
    .prepare(
      `UPDATE signing_keys SET current_key = next_key, next_key = ?2, updated_at = ?3 WHERE tenant_id = ?1
       RETURNING current_key, next_key`,
    )
    .bind(tenantId, fresh, now)
    .first<{ current_key: string; next_key: string }>();
  if (!row) throw new Error(`tenant ${tenantId} has no signing keys`);
  return { current: row.current_key, next: row.next_key };
}

export interface NewTenant {
  tenantId: string;
  token: string;
  readOnlyToken: string;
  currentSigningKey: string;
  nextSigningKey: string;
  /** The shard that holds the tenant's data. */
  shard: number;
}

/**
 * A new tenant with a read-write token, a read-only token and a key pair, in the shard with the fewest tenants (or
 * `shard` when given). In another shard than the primary, its keys (and a copy of its tenant row) are written
 * there first, then the tenant and its tokens to the primary: a crash in between leaves only an unused key pair.
 * Tokens are returned once.
 */
export async function createTenant(env: Env, name: string, now: number, shard?: number): Promise<NewTenant> {
  const t: NewTenant = {
    tenantId: newTenantId(),
    token: "",
    readOnlyToken: "",
    currentSigningKey: newSigningKey(),
    nextSigningKey: newSigningKey(),
    shard: shard ?? (await chooseShard(env)),
  };
  t.token = newToken(t.tenantId);
  t.readOnlyToken = newToken(t.tenantId);
  const keys = (db: D1Database) => [
    db.prepare("INSERT INTO tenants (id, name, created_at, shard) VALUES (?1, ?2, ?3, ?4)").bind(t.tenantId, name, now, t.shard),
    db
      .prepare("INSERT INTO signing_keys (tenant_id, current_key, next_key, updated_at) VALUES (?1, ?2, ?3, ?4)")
      .bind(t.tenantId, t.currentSigningKey, t.nextSigningKey, now),
  ];
  const db = primaryDb(env);
  // Another shard keeps a copy of the tenant row next to the keys (which refer to it).
  if (t.shard !== 0) await shardEnv(env, t.shard).DB.batch(keys(shardEnv(env, t.shard).DB));
  await db.batch([
    ...(t.shard === 0 ? keys(db) : [db.prepare("INSERT INTO tenants (id, name, created_at, shard) VALUES (?1, ?2, ?3, ?4)").bind(t.tenantId, name, now, t.shard)]),
    db
      .prepare("INSERT INTO tokens (token_hash, tenant_id, read_only, created_at) VALUES (?1, ?2, 0, ?3)")
      .bind(await sha256Hex(t.token), t.tenantId, now),
    db
      .prepare("INSERT INTO tokens (token_hash, tenant_id, read_only, created_at) VALUES (?1, ?2, 1, ?3)")
      .bind(await sha256Hex(t.readOnlyToken), t.tenantId, now),
  ]);
  return t;
}

/** A new token for an existing tenant. */
export async function addToken(db: D1Database, tenantId: string, readOnly: boolean, now: number): Promise<string | null> {
  const exists = await db.prepare("SELECT 1 AS x FROM tenants WHERE id = ?1").bind(tenantId).first();
  if (!exists) return null;
  const token = newToken(tenantId);
  await db
    .prepare("INSERT INTO tokens (token_hash, tenant_id, read_only, created_at) VALUES (?1, ?2, ?3, ?4)")
    .bind(await sha256Hex(token), tenantId, readOnly ? 1 : 0, now)
    .run();
  return token;
}
