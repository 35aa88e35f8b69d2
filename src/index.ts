/** Boomerang's worker: the /v2 API (fetch), the delivery consumer (queue) and the sweeper (scheduled). */
import { buildApp } from "./app";
import { consumeBatch } from "./delivery/consumer";
import { sweepAll } from "./delivery/sweeper";
import type { DeliveryTask, Env } from "./env";
import { workerEnv } from "./bindings";
import { flushMeter, metering } from "./meter";

export { Meter } from "./meter";
export { Gate } from "./objects/gate";
export { Limiter } from "./objects/limiter";
export { Runner } from "./objects/runner";
export { D1Host } from "./db/remote";
export { ScheduleTimer } from "./objects/schedule-timer";
export { Scheduler } from "./objects/scheduler";
export type { Env } from "./env";

const app = buildApp();
/** False until this isolate's first sweep (under `npm run dev`, that is the first sweep after a start). */
let sweptInThisIsolate = false;

export default {
  async fetch(request, env, ctx) {
    const res = await app.fetch(request, workerEnv(env), ctx);
    // Only when metering is on: a waitUntil per request is not free.
    if (metering(env)) ctx.waitUntil(flushMeter(env));
    return res;
  },
  async queue(batch, env) {
    await consumeBatch(batch, workerEnv(env));
    await flushMeter(env);
  },
  async scheduled(_controller, env, ctx) {
    const afterRestart = !sweptInThisIsolate;
    sweptInThisIsolate = true;
    ctx.waitUntil(
      sweepAll(workerEnv(env), Date.now(), { afterRestart }).then(async (r) => {
        if (r.redriven) console.log(`sweeper re-drove ${r.redriven} message(s)`);
        await flushMeter(env);
      }),
    );
  },
} satisfies ExportedHandler<Env, DeliveryTask>;
