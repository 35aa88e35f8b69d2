/** Boomerang's worker: the /v2 API (fetch), the delivery consumer (queue) and the sweeper (scheduled). */
import { buildApp } from "./app";
import { consumeBatch } from "./delivery/consumer";
import { sweep } from "./delivery/sweeper";
import type { DeliveryTask, Env } from "./env";

export { Gate } from "./objects/gate";
export { ScheduleTimer } from "./objects/schedule-timer";
export { Scheduler } from "./objects/scheduler";
export type { Env } from "./env";

const app = buildApp();

export default {
  fetch: app.fetch,
  async queue(batch, env) {
    await consumeBatch(batch, env);
  },
  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(
      sweep(env, Date.now()).then((r) => {
        if (r.redriven) console.log(`sweeper re-drove ${r.redriven} message(s)`);
      }),
    );
  },
} satisfies ExportedHandler<Env, DeliveryTask>;
