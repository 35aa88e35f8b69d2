/**
 * Optional cost instrumentation (METER=true): counts D1 statements and rows, queue sends and Durable Object
 * requests, for the cost benchmark. Each isolate counts locally and flushes its deltas to the Meter Durable
 * Object at the end of each handler, so the totals cover the worker and every Durable Object.
 * Off by default: then `metered(env)` is `env` itself and `flushMeter` does nothing.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./env";

export interface Counters {
  /** D1 round trips: a `batch()` or one statement's `run`/`all`/`first`. */
  d1Calls: number;
  d1Statements: number;
  d1RowsRead: number;
  d1RowsWritten: number;
  queueSends: number;
  queueMessages: number;
  doRequests: number;
}

const counters: Counters = { d1Calls: 0, d1Statements: 0, d1RowsRead: 0, d1RowsWritten: 0, queueSends: 0, queueMessages: 0, doRequests: 0 };

const ZERO: Counters = { d1Calls: 0, d1Statements: 0, d1RowsRead: 0, d1RowsWritten: 0, queueSends: 0, queueMessages: 0, doRequests: 0 };

function meterStub(env: Env) {
  return env.METER_STORE.get(env.METER_STORE.idFromName("meter"));
}

/** Sends this isolate's counts so far to the Meter object (and zeroes them here). */
/** Whether cost metering is on (METER=true). */
export function metering(env: Env): boolean {
  return env.METER === "true";
}

export async function flushMeter(env: Env): Promise<void> {
  if (!metering(env)) return;
  const delta = { ...counters };
  if (Object.values(delta).every((v) => v === 0)) return;
  for (const k of Object.keys(counters) as (keyof Counters)[]) counters[k] = 0;
  await meterStub(env).add(delta);
}

export async function readCounters(env: Env): Promise<Counters> {
  await flushMeter(env);
  return meterStub(env).read();
}

export async function resetCounters(env: Env): Promise<void> {
  for (const k of Object.keys(counters) as (keyof Counters)[]) counters[k] = 0;
  await meterStub(env).reset();
}

/** Totals of every isolate's counts. */
export class Meter extends DurableObject<Env> {
  async add(delta: Counters): Promise<void> {
    const total = (await this.ctx.storage.get<Counters>("total")) ?? { ...ZERO };
    for (const k of Object.keys(ZERO) as (keyof Counters)[]) total[k] += delta[k] ?? 0;
    await this.ctx.storage.put("total", total);
  }

  async read(): Promise<Counters> {
    return (await this.ctx.storage.get<Counters>("total")) ?? { ...ZERO };
  }

  async reset(): Promise<void> {
    await this.ctx.storage.delete("total");
  }
}

function countMeta(meta: D1Meta | undefined): void {
  counters.d1Statements += 1;
  counters.d1RowsRead += meta?.rows_read ?? 0;
  counters.d1RowsWritten += meta?.rows_written ?? 0;
}

/** A statement that counts itself when run. `first()` goes through `all()` so that its meta is seen. */
function meterStatement(stmt: D1PreparedStatement): D1PreparedStatement {
  const wrapped: D1PreparedStatement = Object.create(stmt);
  wrapped.bind = (...values: unknown[]) => meterStatement(stmt.bind(...values));
  wrapped.run = async <T>() => {
    const r = await stmt.run<T>();
    counters.d1Calls += 1;
    countMeta(r.meta);
    return r;
  };
  wrapped.all = async <T>() => {
    const r = await stmt.all<T>();
    counters.d1Calls += 1;
    countMeta(r.meta);
    return r;
  };
  wrapped.first = (async (column?: string) => {
    const r = await stmt.all<Record<string, unknown>>();
    counters.d1Calls += 1;
    countMeta(r.meta);
    const row = r.results[0];
    if (row === undefined) return null;
    return column === undefined ? row : (row[column] ?? null);
  }) as D1PreparedStatement["first"];
  raw.set(wrapped, stmt);
  return wrapped;
}

const raw = new WeakMap<D1PreparedStatement, D1PreparedStatement>();

function meterD1(db: D1Database): D1Database {
  const wrapped: D1Database = Object.create(db);
  wrapped.prepare = (query: string) => meterStatement(db.prepare(query));
  wrapped.batch = async <T>(stmts: D1PreparedStatement[]) => {
    const results = await db.batch<T>(stmts.map((s) => raw.get(s) ?? s));
    counters.d1Calls += 1;
    for (const r of results) countMeta(r.meta);
    return results;
  };
  return wrapped;
}

function meterQueue<T>(q: Queue<T>): Queue<T> {
  return {
    send: async (body, options) => {
      counters.queueSends += 1;
      counters.queueMessages += 1;
      return q.send(body, options);
    },
    sendBatch: async (messages, options) => {
      counters.queueSends += 1;
      counters.queueMessages += [...messages].length;
      return q.sendBatch(messages, options);
    },
  } as Queue<T>;
}

/** Every method call on a stub counts as one Durable Object request. */
function meterNamespace<T extends Rpc.DurableObjectBranded | undefined>(ns: DurableObjectNamespace<T>): DurableObjectNamespace<T> {
  type N = DurableObjectNamespace<T>;
  const wrapped = Object.create(ns) as N;
  wrapped.get = ((id: DurableObjectId) => {
    const stub = ns.get(id);
    // Forward by name on the real stub: RPC stubs must be called as themselves, never through a proxy receiver.
    return new Proxy(stub, {
      get(target, prop) {
        if (typeof prop !== "string" || prop === "then") return Reflect.get(target, prop);
        return (...a: unknown[]) => {
          counters.doRequests += 1;
          return (target as unknown as Record<string, (...x: unknown[]) => unknown>)[prop](...a);
        };
      },
    });
  }) as N["get"];
  wrapped.idFromName = (name: string) => ns.idFromName(name);
  return wrapped;
}

const cache = new WeakMap<Env, Env>();

/** The environment with counting bindings when METER is "true"; otherwise unchanged. */
export function metered(env: Env): Env {
  if (!metering(env)) return env;
  const hit = cache.get(env);
  if (hit) return hit;
  const m: Env = {
    ...env,
    DB: meterD1(env.DB),
    DELIVERIES: meterQueue(env.DELIVERIES),
    SCHEDULER: meterNamespace(env.SCHEDULER),
    SCHEDULE_TIMER: meterNamespace(env.SCHEDULE_TIMER),
    GATE: meterNamespace(env.GATE),
  };
  cache.set(env, m);
  return m;
}
