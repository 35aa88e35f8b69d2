/** ScheduleTimer: one Durable Object per schedule, whose alarm rings at the schedule's next fire time. */
import { DurableObject } from "cloudflare:workers";
import { fireSchedule } from "../delivery/fire";
import type { Env } from "../env";
import { workerEnv } from "../bindings";
import { flushMeter } from "../meter";

interface Target {
  tenantId: string;
  scheduleId: string;
}

export class ScheduleTimer extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, workerEnv(env));
  }

  /** Points the timer at a fire time (null disarms it). */
  async arm(tenantId: string, scheduleId: string, next: number | null): Promise<void> {
    await this.ctx.storage.put<Target>("target", { tenantId, scheduleId });
    if (next === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(next);
  }

  async disarm(): Promise<void> {
    await this.ctx.storage.deleteAll();
    await this.ctx.storage.deleteAlarm();
  }

  async alarmTime(): Promise<number | null> {
    return this.ctx.storage.getAlarm();
  }

  async alarm(): Promise<void> {
    const target = await this.ctx.storage.get<Target>("target");
    if (!target) return;
    // An exception here makes the runtime retry the alarm: the fire is idempotent, so that is safe.
    const next = await fireSchedule(this.env, target.tenantId, target.scheduleId, Date.now());
    if (next === null) await this.ctx.storage.deleteAll();
    else await this.ctx.storage.setAlarm(next);
    await flushMeter(this.env);
  }
}

export function timerStub(env: Env, tenantId: string, scheduleId: string) {
  return env.SCHEDULE_TIMER.get(env.SCHEDULE_TIMER.idFromName(`${tenantId}\u0000${scheduleId}`));
}
