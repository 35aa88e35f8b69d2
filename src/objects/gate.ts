/**
 * Gate: a SQLite-backed Durable Object that admits messages one by one under limits: parallelism (how many may
 * be in flight), rate per period, pause. One per FIFO queue (parallelism from the queue) and one per
 * flow-control key. Admission order is due time, then arrival: strict FIFO for a queue of parallelism 1.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import { slotStates, unholdMessages } from "../db/messages";
import { shardEnv, shardOfMessageId } from "../db/shards";
import { sendIds } from "../delivery/packs";
import { workerEnv } from "../bindings";
import { flushMeter } from "../meter";

export interface GateItem {
  id: string;
  dueAt: number;
  /** Gate to pass the message on to once admitted here (a queue's message with a flow-control key). */
  next?: string | null;
}

export interface GateLimits {
  parallelism?: number | null;
  rate?: number | null;
  periodS?: number | null;
}

export interface GateInfo {
  waiting: number;
  inflight: number;
  parallelism: number | null;
  rate: number | null;
  periodS: number;
  periodStart: number;
  rateCount: number;
  paused: boolean;
  pinnedParallelism: boolean;
  pinnedRate: boolean;
}

const ADMIT_BATCH = 100;
/** How soon the alarm retries hand-offs that failed. */
const OUTBOX_RETRY_MS = 1000;

export function gateName(kind: "queue" | "flow", tenantId: string, name: string): string {
  return `${kind}\u0000${tenantId}\u0000${name}`;
}

/** Message ids grouped by the D1 shard they name (a Gate serves one tenant, so in practice one group). */
function byShard(ids: string[]): [number, string[]][] {
  const out = new Map<number, string[]>();
  for (const id of ids) {
    const n = shardOfMessageId(id);
    (out.get(n) ?? out.set(n, []).get(n)!).push(id);
  }
  return [...out];
}

export function gateStub(env: Env, name: string) {
  return env.GATE.get(env.GATE.idFromName(name));
}

export class Gate extends DurableObject<Env> {
  private sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, workerEnv(env));
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`CREATE TABLE IF NOT EXISTS waiting (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
        due_at INTEGER NOT NULL, next TEXT)`);
      this.sql.exec(`CREATE INDEX IF NOT EXISTS waiting_due ON waiting(due_at, seq)`);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS inflight (id TEXT PRIMARY KEY, since INTEGER NOT NULL)`);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)`);
      // Admitted ids whose hand-off (unhold in D1, the deliveries queue or the next gate) is not done yet.
      this.sql.exec(`CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, next TEXT)`);
    });
  }

  private get<T>(k: string, fallback: T): T {
    const row = this.sql.exec<{ v: string }>("SELECT v FROM kv WHERE k = ?", k).toArray()[0];
    return row ? (JSON.parse(row.v) as T) : fallback;
  }

  private set(k: string, v: unknown): void {
    this.sql.exec("INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", k, JSON.stringify(v));
  }

  /**
   * Adds messages to the waitlist. `limits` are the latest values carried by messages (ignored where pinned);
   * `defaults` apply only to values this gate has never had (a queue created on the fly, a gate whose first
   * hand-off was lost and is repaired by the sweeper).
   */
  async add(items: GateItem[], limits?: GateLimits, defaults?: GateLimits): Promise<void> {
    if (defaults) {
      for (const k of ["parallelism", "rate", "periodS"] as const) {
        if (defaults[k] !== undefined && this.get<unknown>(k, undefined) === undefined) this.set(k, defaults[k]);
      }
    }
    for (const it of items) {
      // Idempotent: a message already waiting or already admitted here is not added again.
      this.sql.exec(
        "INSERT OR IGNORE INTO waiting (id, due_at, next) SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM inflight WHERE id = ?)",
        it.id,
        it.dueAt,
        it.next ?? null,
        it.id,
      );
    }
    if (limits) {
      if (!this.get("pinnedParallelism", false) && limits.parallelism !== undefined) this.set("parallelism", limits.parallelism);
      if (!this.get("pinnedRate", false)) {
        if (limits.rate !== undefined) this.set("rate", limits.rate);
        if (limits.periodS !== undefined) this.set("periodS", limits.periodS ?? 1);
      }
    }
    await this.admit();
  }

  /** Frees the slots of finished messages and forgets any still waiting (cancelled). */
  async release(ids: string[]): Promise<void> {
    for (const id of ids) {
      this.sql.exec("DELETE FROM inflight WHERE id = ?", id);
      this.sql.exec("DELETE FROM waiting WHERE id = ?", id);
    }
    await this.admit();
  }

  /** Queue settings (parallelism, paused). */
  async configure(opts: { parallelism?: number; paused?: boolean }): Promise<void> {
    if (opts.parallelism !== undefined) this.set("parallelism", opts.parallelism);
    if (opts.paused !== undefined) this.set("paused", opts.paused);
    await this.admit();
  }

  /** Pins limits so that values carried by messages no longer change them; starts a new rate period. */
  async pin(limits: GateLimits): Promise<void> {
    if (limits.parallelism != null) {
      this.set("parallelism", limits.parallelism);
      this.set("pinnedParallelism", true);
    }
    if (limits.rate != null || limits.periodS != null) {
      if (limits.rate != null) this.set("rate", limits.rate);
      if (limits.periodS != null) this.set("periodS", limits.periodS);
      this.set("pinnedRate", true);
    }
    this.resetRateCounters();
    await this.admit();
  }

  async unpin(which: { parallelism?: boolean; rate?: boolean }): Promise<void> {
    if (which.parallelism) this.set("pinnedParallelism", false);
    if (which.rate) this.set("pinnedRate", false);
    await this.admit();
  }

  async resetRate(): Promise<void> {
    this.resetRateCounters();
    await this.admit();
  }

  /** Resets the parallelism and rate counters: in-flight messages no longer count against the limits. */
  async reset(): Promise<void> {
    this.sql.exec("DELETE FROM inflight");
    this.resetRateCounters();
    await this.admit();
  }

  private resetRateCounters(): void {
    this.set("rateCount", 0);
    this.set("periodStart", Date.now());
  }

  async info(): Promise<GateInfo> {
    return {
      waiting: Number(this.sql.exec("SELECT count(*) AS n FROM waiting").one().n),
      inflight: Number(this.sql.exec("SELECT count(*) AS n FROM inflight").one().n),
      parallelism: this.get<number | null>("parallelism", null),
      rate: this.get<number | null>("rate", null),
      periodS: this.get("periodS", 1),
      periodStart: this.get("periodStart", 0),
      rateCount: this.get("rateCount", 0),
      paused: this.get("paused", false),
      pinnedParallelism: this.get("pinnedParallelism", false),
      pinnedRate: this.get("pinnedRate", false),
    };
  }

  /** Empties the gate (queue deleted); returns the ids that were waiting, or admitted but not handed off yet. */
  async drain(): Promise<string[]> {
    const ids = this.sql
      .exec<{ id: string }>("SELECT id FROM outbox UNION ALL SELECT id FROM waiting")
      .toArray()
      .map((r) => r.id);
    this.sql.exec("DELETE FROM outbox");
    this.sql.exec("DELETE FROM waiting");
    this.sql.exec("DELETE FROM inflight");
    this.sql.exec("DELETE FROM kv");
    await this.ctx.storage.deleteAlarm();
    return ids;
  }

  async alarm(): Promise<void> {
    await this.admit();
  }

  /**
   * The sweeper's repair: frees slots whose message has finished but whose release never arrived (a crash
   * between the outcome and the release). A queue slot also waits for the message's callbacks.
   */
  async reconcile(kind: "queue" | "flow", olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    const ids = this.sql.exec<{ id: string }>("SELECT id FROM inflight WHERE since < ? LIMIT 500", cutoff).toArray().map((r) => r.id);
    if (ids.length === 0) return 0;
    const results = (await Promise.all(byShard(ids).map(([n, list]) => slotStates(shardEnv(this.env, n).DB, list)))).flat();
    const known = new Map(results.map((r) => [r.id, r]));
    // A message that no longer exists (pruned) or has finished no longer holds its slot.
    const done = ids.filter((id) => {
      const r = known.get(id);
      return !r || (r.finished_at !== null && (kind === "flow" || r.open_children === 0));
    });
    if (done.length) await this.release(done);
    return done.length;
  }

  /**
   * Admission. Choosing and recording is synchronous (no await in between), so no other call can interleave: the
   * chosen ids move from `waiting` to `inflight` and into `outbox` at once. Their hand-offs run after, with no lock
   * held (`blockConcurrencyWhile` is not used: an I/O error there would reset the object and fail every concurrent
   * call). An outbox row is deleted once its hand-off is done; a failed hand-off stays, for the alarm to retry.
   */
  private async admit(): Promise<void> {
    this.recordAdmissions();
    await this.flushOutbox();
    await this.arm();
    await flushMeter(this.env);
  }

  private recordAdmissions(): void {
    for (;;) {
      const now = Date.now();
      const chosen = this.choose(now);
      if (chosen.length === 0) return;
      for (const c of chosen) {
        this.sql.exec("DELETE FROM waiting WHERE id = ?", c.id);
        this.sql.exec("INSERT OR REPLACE INTO inflight (id, since) VALUES (?, ?)", c.id, now);
        this.sql.exec("INSERT OR IGNORE INTO outbox (id, next) VALUES (?, ?)", c.id, c.next);
      }
      if (this.get<number | null>("rate", null) !== null) this.set("rateCount", this.get("rateCount", 0) + chosen.length);
      if (chosen.length < ADMIT_BATCH) return;
    }
  }

  /** The outbox flush under way in this object, if any: one at a time, so that ids are not handed off twice. */
  private flushing: Promise<void> | null = null;

  private async flushOutbox(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.flushing = this.flushOnce().finally(() => {
      this.flushing = null;
    });
    await this.flushing;
  }

  private async flushOnce(): Promise<void> {
    for (;;) {
      const rows = this.sql.exec<{ seq: number; id: string; next: string | null }>("SELECT seq, id, next FROM outbox ORDER BY seq LIMIT 500").toArray();
      if (rows.length === 0) return;
      const deliver = rows.filter((r) => !r.next).map((r) => r.id);
      const onward = new Map<string, GateItem[]>();
      for (const r of rows) if (r.next) (onward.get(r.next) ?? onward.set(r.next, []).get(r.next)!).push({ id: r.id, dueAt: 0 });
      try {
        if (deliver.length) {
          for (const [n, list] of byShard(deliver)) await unholdMessages(shardEnv(this.env, n).DB, list);
          await sendIds(this.env, deliver);
        }
        for (const [name, items] of onward) await gateStub(this.env, name).add(items);
      } catch (err) {
        // Nothing is lost: the rows stay, and the alarm (armed for it below) tries again.
        console.error(`a gate could not hand off ${rows.length} admitted message(s); retrying in ${OUTBOX_RETRY_MS} ms`, err);
        return;
      }
      this.sql.exec("DELETE FROM outbox WHERE seq <= ?", rows[rows.length - 1].seq);
      if (rows.length < 500) return;
    }
  }

  /** The messages that may go now, in order, within every limit. */
  private choose(now: number): { id: string; next: string | null }[] {
    if (this.get("paused", false)) return [];
    let room = ADMIT_BATCH;
    const parallelism = this.get<number | null>("parallelism", null);
    if (parallelism !== null) {
      const inflight = Number(this.sql.exec("SELECT count(*) AS n FROM inflight").one().n);
      room = Math.min(room, parallelism - inflight);
    }
    const rate = this.get<number | null>("rate", null);
    if (rate !== null) {
      const periodMs = this.get("periodS", 1) * 1000;
      if (now >= this.get("periodStart", 0) + periodMs) this.resetRateCounters();
      room = Math.min(room, rate - this.get("rateCount", 0));
    }
    if (room <= 0) return [];
    return this.sql
      .exec<{ id: string; next: string | null }>(
        "SELECT id, next FROM waiting WHERE due_at <= ? ORDER BY due_at, seq LIMIT ?",
        now,
        room,
      )
      .toArray();
  }

  /** Wakes up at the earliest time something may change: a waiting message falls due or a rate period ends. */
  private async arm(): Promise<void> {
    const now = Date.now();
    const times: number[] = [];
    const nextDue = this.sql.exec<{ d: number | null }>("SELECT min(due_at) AS d FROM waiting WHERE due_at > ?", now).one().d;
    if (nextDue !== null) times.push(nextDue);
    const rate = this.get<number | null>("rate", null);
    const anyDue = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM waiting WHERE due_at <= ?", now).one().n > 0;
    if (rate !== null && anyDue && this.get("rateCount", 0) >= rate) {
      times.push(this.get("periodStart", 0) + this.get("periodS", 1) * 1000);
    }
    const pending = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n > 0;
    if (pending) times.push(now + OUTBOX_RETRY_MS);
    if (times.length === 0) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.min(...times));
  }
}
