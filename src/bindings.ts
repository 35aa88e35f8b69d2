/** The env the worker's code runs with, from the one the runtime hands an entry point or a Durable Object. */
import { withD1Host } from "./db/remote";
import type { Env } from "./env";
import { metered } from "./meter";

/** D1 through the local D1 host when there is one (`npm start`, src/db/remote.ts), counted when METER is on. */
export function workerEnv(env: Env): Env {
  return metered(withD1Host(env));
}
