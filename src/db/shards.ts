/**
 * Tenants spread over several D1 databases ("shards"). `DB` is the primary: it holds tenants, their tokens and the
 * tenant-to-shard map (`tenants.shard`), and it is also shard 0. `DB_SHARD_1`, `DB_SHARD_2`, … are the others, bound
 * with consecutive numbers. Everything a tenant owns (messages, log entries, DLQ, schedules, queues, URL groups,
 * flow-control keys, signing keys) lives in its shard, so code that works for one tenant runs on
 * `shardEnv(env, shard)`: an env whose `DB` is that shard. A message id names its shard (`msg_<n>_…` for n ≥ 1), so
 * the consumer and the Gates find a message without a lookup.
 */
import type { Env } from "../env";

function binding(env: Env, n: number): D1Database | undefined {
  return n === 0 ? env.DB : (env as unknown as Record<string, D1Database | undefined>)[`DB_SHARD_${n}`];
}

interface Family {
  base: Env;
  shards: Env[];
}
const families = new WeakMap<object, Family>();

function family(env: Env): Family {
  let f = families.get(env);
  if (!f) {
    f = { base: env, shards: [] };
    families.set(env, f);
  }
  return f;
}

/** How many shards the deployment binds: the primary, then DB_SHARD_1 … as long as the numbers run on. */
export function shardCount(env: Env): number {
  const base = family(env).base;
  let n = 1;
  while (binding(base, n)) n += 1;
  return n;
}

/**
 * The env of shard `n`: `DB` is that shard's database, `PRIMARY_DB` the primary and `SHARD` the number. The same
 * object every time for one env and shard, so per-env caches (settings, group commits) keep working.
 */
export function shardEnv(env: Env, n: number): Env {
  const f = family(env);
  let e = f.shards[n];
  if (!e) {
    const db = binding(f.base, n);
    if (!db) throw new Error(`shard ${n} is not bound (DB_SHARD_${n}); docs/storage.md says how to add a shard`);
    e = { ...f.base, DB: db, PRIMARY_DB: f.base.DB, SHARD: n };
    f.shards[n] = e;
    families.set(e, f);
  }
  return e;
}

/** Every shard's env, shard 0 first: for work that spans tenants (the sweeper). */
export function allShards(env: Env): Env[] {
  return Array.from({ length: shardCount(env) }, (_, n) => shardEnv(env, n));
}

/** The primary database (tenants, tokens, the shard map), from any env of the family. */
export function primaryDb(env: Env): D1Database {
  return env.PRIMARY_DB ?? env.DB;
}

export { shardOfId as shardOfMessageId } from "../core/ids";

const tenantShards = new Map<string, number>();

/** The shard of a tenant, from the map in the primary (cached: a tenant never moves). */
export async function tenantShard(env: Env, tenantId: string): Promise<number> {
  const hit = tenantShards.get(tenantId);
  if (hit !== undefined) return hit;
  const row = await primaryDb(env).prepare("SELECT shard FROM tenants WHERE id = ?1").bind(tenantId).first<{ shard: number }>();
  const shard = Number(row?.shard ?? 0);
  if (row) tenantShards.set(tenantId, shard);
  return shard;
}

/** The shard for a new tenant: the one with the fewest tenants (a newly added shard fills up first). */
export async function chooseShard(env: Env): Promise<number> {
  const count = shardCount(env);
  if (count === 1) return 0;
  const { results } = await primaryDb(env).prepare("SELECT shard, count(*) AS n FROM tenants GROUP BY shard").all<{ shard: number; n: number }>();
  const load = new Map(results.map((r) => [Number(r.shard), Number(r.n)]));
  let best = 0;
  for (let n = 1; n < count; n++) if ((load.get(n) ?? 0) < (load.get(best) ?? 0)) best = n;
  return best;
}
