/**
 * D1 served by another process (`npm start --d1-host`): the D1 host.
 *
 * Locally, D1's SQLite runs on the workerd thread of the process that holds it, and a D1 call costs that thread about
 * 1.1 ms of CPU even when it does nothing (bench/d1-floor.mjs). With `--d1-host`, `npm start` holds the databases in a
 * workerd process of their own, which serves them through its `D1Host` entry point; the worker's process gets no D1 binding,
 * but a `D1_HOST` service binding and the names of the databases (`D1_HOST_NAMES`). `withD1Host(env)` gives the
 * worker an env whose D1 bindings are `RemoteD1` objects with the D1 API the code uses (prepare, bind, first, all,
 * run, raw, batch, exec). Each call is one request to the host, which makes the same call on its real binding, so a
 * batch is still one atomic D1 batch and errors carry D1's own messages. A deployment has no D1 host.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import { base64ToBytes, bytesToBase64 } from "../core/encoding";
import type { Env } from "../env";

/** The header that carries the D1 host's secret. */
export const D1_HOST_SECRET_HEADER = "x-boomerang-d1-secret";

/**
 * Bytes travel as {"$b": base64}, everything else as JSON: `toWireJson` writes a call or an answer in one pass, and
 * `fromWireJson` reads one back with bytes as ArrayBuffers, as D1 gives and takes them.
 */
interface WireStatement {
  sql: string;
  params: unknown[];
}

type WireCall =
  | { db: string; op: "all" | "run"; stmt: WireStatement }
  | { db: string; op: "first"; stmt: WireStatement; column?: string }
  | { db: string; op: "raw"; stmt: WireStatement; columnNames?: boolean }
  | { db: string; op: "batch"; stmts: WireStatement[] }
  | { db: string; op: "exec"; sql: string };

function isBytes(v: unknown): v is ArrayBuffer | ArrayBufferView {
  return v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}

function toWireJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (!isBytes(v)) return v;
    const bytes = v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    return { $b: bytesToBase64(bytes) };
  });
}

function fromWireJson(text: string): unknown {
  return JSON.parse(text, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const b = (v as { $b?: unknown }).$b;
    if (typeof b !== "string" || Object.keys(v).length !== 1) return v;
    const bytes = base64ToBytes(b);
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  });
}

/** The worker's side: one D1 database of the host. */
export class RemoteD1 {
  constructor(
    private readonly host: Fetcher,
    private readonly secret: string,
    readonly name: string,
  ) {}

  prepare(sql: string): D1PreparedStatement {
    return new RemoteStatement(this, sql, []) as unknown as D1PreparedStatement;
  }

  async batch<T = unknown>(statements: D1PreparedStatement[]): Promise<D1Result<T>[]> {
    const stmts = statements.map((s) => {
      if (!(s instanceof RemoteStatement)) throw new Error(`${this.name} is served by the D1 host: its batch takes only statements it prepared`);
      return s.wire();
    });
    return (await this.call({ db: this.name, op: "batch", stmts })) as D1Result<T>[];
  }

  async exec(sql: string): Promise<D1ExecResult> {
    return (await this.call({ db: this.name, op: "exec", sql })) as D1ExecResult;
  }

  withSession(): never {
    throw new Error("D1 sessions are not served by the local D1 host");
  }

  dump(): never {
    throw new Error("D1 dump is not served by the local D1 host");
  }

  /** One request to the host. An error of the call there is thrown here with the same message. */
  async call(call: WireCall): Promise<unknown> {
    const res = await this.host.fetch("http://d1-host/", {
      method: "POST",
      headers: { [D1_HOST_SECRET_HEADER]: this.secret, "content-type": "application/json" },
      body: toWireJson(call),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`the local D1 host answered ${res.status}: ${text.slice(0, 500)}`);
    const answer = fromWireJson(text) as { ok: unknown } | { error: string };
    if ("error" in answer) throw new Error(answer.error);
    return answer.ok;
  }
}

class RemoteStatement {
  constructor(
    private readonly db: RemoteD1,
    private readonly sql: string,
    private readonly params: unknown[],
  ) {}

  bind(...values: unknown[]): RemoteStatement {
    return new RemoteStatement(this.db, this.sql, values);
  }

  wire(): WireStatement {
    return { sql: this.sql, params: this.params };
  }

  private send<T>(call: { op: "all" | "run" } | { op: "first"; column?: string } | { op: "raw"; columnNames: boolean }): Promise<T> {
    return this.db.call({ db: this.db.name, stmt: this.wire(), ...call } as WireCall) as Promise<T>;
  }

  first<T = unknown>(column?: string): Promise<T | null> {
    return this.send(column === undefined ? { op: "first" } : { op: "first", column });
  }

  all<T = unknown>(): Promise<D1Result<T>> {
    return this.send({ op: "all" });
  }

  run<T = unknown>(): Promise<D1Result<T>> {
    return this.send({ op: "run" });
  }

  raw<T = unknown[]>(options?: { columnNames?: boolean }): Promise<T[]> {
    return this.send({ op: "raw", columnNames: options?.columnNames === true });
  }
}

/** The D1 binding names a D1 host serves: DB and DB_SHARD_<n> only. */
const D1_NAME = /^DB(_SHARD_\d{1,4})?$/;

/** Remote databases by host and name, so that per-database state (group commits) is shared as with a binding. */
const remotes = new WeakMap<Fetcher, Map<string, RemoteD1>>();
const wrapped = new WeakMap<object, Env>();

/**
 * `env` with a RemoteD1 for every database the D1 host serves (`D1_HOST_NAMES`), when there is a D1 host; otherwise
 * `env` itself. The same object for the same env, like the bindings it stands for.
 */
export function withD1Host(env: Env): Env {
  if (!env.D1_HOST || !env.D1_HOST_SECRET || !env.D1_HOST_NAMES) return env;
  const hit = wrapped.get(env);
  if (hit) return hit;
  const dbs: Record<string, RemoteD1> = {};
  for (const name of env.D1_HOST_NAMES.split(",").map((n) => n.trim()).filter((n) => n !== "")) {
    if (!D1_NAME.test(name)) throw new Error(`D1_HOST_NAMES: "${name}" is not a D1 binding name (DB, DB_SHARD_<n>)`);
    let byName = remotes.get(env.D1_HOST);
    if (!byName) {
      byName = new Map();
      remotes.set(env.D1_HOST, byName);
    }
    let db = byName.get(name);
    if (!db) {
      db = new RemoteD1(env.D1_HOST, env.D1_HOST_SECRET, name);
      byName.set(name, db);
    }
    dbs[name] = db;
  }
  const out = { ...env, ...dbs } as unknown as Env;
  wrapped.set(env, out);
  return out;
}

function statementOf(db: D1Database, s: WireStatement): D1PreparedStatement {
  const stmt = db.prepare(s.sql);
  return s.params.length ? stmt.bind(...s.params) : stmt;
}

/** The host's side: makes one call on its real binding and answers {"ok": result} or {"error": message}. */
export async function d1HostAnswer(request: Request, env: Env): Promise<Response> {
  const json = (body: unknown, status = 200) => new Response(toWireJson(body), { status, headers: { "content-type": "application/json" } });
  if (!env.D1_HOST_SECRET || request.headers.get(D1_HOST_SECRET_HEADER) !== env.D1_HOST_SECRET) return json({ error: "wrong or missing D1 host secret" }, 403);
  if (request.method !== "POST") return json({ error: "the D1 host takes POST only" }, 405);
  let call: WireCall;
  try {
    call = fromWireJson(await request.text()) as WireCall;
  } catch {
    return json({ error: "the body is not JSON" }, 400);
  }
  const db = typeof call?.db === "string" && D1_NAME.test(call.db) ? (env as unknown as Record<string, D1Database | undefined>)[call.db] : undefined;
  if (!db) return json({ error: `no D1 database "${String(call?.db)}" here` }, 400);
  try {
    switch (call.op) {
      case "all":
        return json({ ok: await statementOf(db, call.stmt).all() });
      case "run":
        return json({ ok: await statementOf(db, call.stmt).run() });
      case "first":
        return json({ ok: call.column === undefined ? await statementOf(db, call.stmt).first() : await statementOf(db, call.stmt).first(call.column) });
      case "raw":
        return json({ ok: call.columnNames ? await statementOf(db, call.stmt).raw({ columnNames: true }) : await statementOf(db, call.stmt).raw() });
      case "batch":
        return json({ ok: await db.batch(call.stmts.map((s) => statementOf(db, s))) });
      case "exec":
        return json({ ok: await db.exec(call.sql) });
      default:
        return json({ error: `unknown D1 operation "${String((call as { op?: unknown }).op)}"` }, 400);
    }
  } catch (err) {
    return json({ error: err instanceof Error ? err.message : String(err) });
  }
}

/** The D1 host process's entry point (served on its own socket by `npm start`, see scripts/lean.mjs). */
export class D1Host extends WorkerEntrypoint<Env> {
  fetch(request: Request): Promise<Response> {
    return d1HostAnswer(request, this.env);
  }
}
