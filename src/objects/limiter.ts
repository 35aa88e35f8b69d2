/**
 * Limiter: the burst limit on a tenant's management calls (BURST_RPS), one object per tenant. It counts calls per
 * one-second window in memory: the count is short-lived by nature, so it needs no storage (an evicted object starts
 * a fresh window, which can only let a few more calls through).
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";

export interface BurstAnswer {
  ok: boolean;
  limit: number;
  remaining: number;
  /** When the current window ends (Unix seconds). */
  reset: number;
}

export function limiterStub(env: Env, tenantId: string) {
  return env.LIMITER.get(env.LIMITER.idFromName(tenantId));
}

export class Limiter extends DurableObject<Env> {
  private window = 0;
  private count = 0;
  /** Attempts under way for GLOBAL_PARALLELISM: message id → when its slot lapses on its own (its lease's end). */
  private slots = new Map<string, number>();

  /**
   * Takes attempt slots for `ids` while fewer than `limit` are taken, and returns the ids that got one (an id that
   * already holds a slot keeps it). A slot lapses at `until` if its release never comes (a crashed attempt).
   */
  async acquire(limit: number, ids: string[], until: number): Promise<string[]> {
    const now = Date.now();
    for (const [id, end] of this.slots) if (end < now) this.slots.delete(id);
    const granted: string[] = [];
    for (const id of ids) {
      if (!this.slots.has(id) && this.slots.size >= limit) continue;
      this.slots.set(id, until);
      granted.push(id);
    }
    return granted;
  }

  /** Frees the attempt slots of `ids`. */
  async release(ids: string[]): Promise<void> {
    for (const id of ids) this.slots.delete(id);
  }

  /** Counts one call against `limit` per second. */
  async take(limit: number): Promise<BurstAnswer> {
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.window) {
      this.window = second;
      this.count = 0;
    }
    const ok = this.count < limit;
    if (ok) this.count += 1;
    return { ok, limit, remaining: Math.max(0, limit - this.count), reset: second + 1 };
  }
}
