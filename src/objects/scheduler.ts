/** Scheduler: a SQLite-backed Durable Object that holds ids until they are due, then hands them to the queue. */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import { sendIds } from "../delivery/packs";
import { workerEnv } from "../bindings";
import { flushMeter } from "../meter";

export interface ScheduleItem {
  id: string;
  dueAt: number;
}

/** How many ids one step of an alarm run sends (in packs: `PACK_IDS` per queue message, one `sendBatch`). */
const BATCH = 500;

export class Scheduler extends DurableObject<Env> {
  private sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, workerEnv(env));
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`CREATE TABLE IF NOT EXISTS pending (id TEXT PRIMARY KEY, due_at INTEGER NOT NULL)`);
      this.sql.exec(`CREATE INDEX IF NOT EXISTS pending_due ON pending(due_at)`);
    });
  }

  /** Stores (or moves) ids and arms the alarm for the earliest due time. */
  async schedule(items: ScheduleItem[]): Promise<void> {
    for (const it of items) {
      this.sql.exec(
        "INSERT INTO pending (id, due_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET due_at = excluded.due_at",
        it.id,
        it.dueAt,
      );
    }
    await this.arm();
  }

  /** Forgets ids (cancelled messages); a missing id is fine. */
  async cancel(ids: string[]): Promise<number> {
    let removed = 0;
    for (const id of ids) removed += this.sql.exec("DELETE FROM pending WHERE id = ?", id).rowsWritten;
    await this.arm();
    return removed;
  }

  async pendingCount(): Promise<number> {
    return Number(this.sql.exec("SELECT count(*) AS n FROM pending").one().n);
  }

  /** Every id whose time has come goes to the deliveries queue, in due order, in batches. */
  async alarm(): Promise<void> {
    for (;;) {
      const now = Date.now();
      const rows = this.sql
        .exec<{ id: string }>("SELECT id FROM pending WHERE due_at <= ? ORDER BY due_at, id LIMIT ?", now, BATCH)
        .toArray();
      if (rows.length === 0) break;
      // Send first, delete after: a crash in between re-sends (at-least-once); the consumer skips duplicates.
      await sendIds(this.env, rows.map((r) => r.id));
      for (const r of rows) this.sql.exec("DELETE FROM pending WHERE id = ? AND due_at <= ?", r.id, now);
      if (rows.length < BATCH) break;
    }
    await this.arm();
    await flushMeter(this.env);
  }

  private async arm(): Promise<void> {
    const next = this.sql.exec<{ due: number | null }>("SELECT min(due_at) AS due FROM pending").one().due;
    if (next === null) {
      await this.ctx.storage.deleteAlarm();
      return;
    }
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > next || current < Date.now() - 1000) await this.ctx.storage.setAlarm(next);
  }
}
