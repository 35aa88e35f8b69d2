/**
 * Runner: where detached attempts run (dev mode, see Settings.detachedAttempts), and long ones on a deployment. The
 * consumer claims a batch, hands the claimed messages (rows as read, bodies in R2 not loaded) to a Runner and
 * acknowledges its queue messages at once; the Runner makes the attempts and records their outcomes on its own time,
 * so a slow destination never holds up the next batch. It keeps no state: if it is lost, its messages stay
 * unfinished and the sweeper re-sends them, as after any crash.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import { type Claimed, runDetached } from "../delivery/consumer";
import { shardEnv } from "../db/shards";
import { workerEnv } from "../bindings";

/** Runner instances that share the detached attempts (by a hash of the id). */
export const RUNNERS = 8;

export function runnerStub(env: Env, n: number) {
  return env.RUNNER.get(env.RUNNER.idFromName(`runner-${n}`));
}

export class Runner extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, workerEnv(env));
  }

  /** Starts the attempts of claimed messages of one D1 shard and returns at once. */
  async run(shard: number, claimed: Claimed[]): Promise<void> {
    this.ctx.waitUntil(runDetached(shardEnv(this.env, shard), claimed));
  }
}
