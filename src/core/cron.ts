/** Cron expressions of schedules: five fields, optional `CRON_TZ=<IANA zone>` prefix, next fire times via croner. */
import { Cron } from "croner";
import { badRequest } from "./errors";

export interface ParsedCron {
  /** As stored and shown: trimmed, prefix included. */
  expression: string;
  fields: string;
  timezone: string | null;
}

function checkZone(zone: string): void {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
  } catch {
    throw badRequest(`Upstash-Cron: unknown time zone "${zone}" in CRON_TZ; use an IANA name like America/New_York`);
  }
}

function build(c: ParsedCron): Cron {
  return new Cron(c.fields, { mode: "5-part", timezone: c.timezone ?? "Etc/UTC", paused: true });
}

export function parseCron(raw: string | undefined): ParsedCron {
  if (raw === undefined || raw.trim() === "") throw badRequest("Upstash-Cron is required, e.g. Upstash-Cron: */5 * * * *");
  const expression = raw.trim().replace(/\s+/g, " ");
  let fields = expression;
  let timezone: string | null = null;
  const tz = /^CRON_TZ=(\S+)\s+(.*)$/.exec(expression);
  if (tz) {
    timezone = tz[1];
    fields = tz[2];
    checkZone(timezone);
  } else if (expression.startsWith("CRON_TZ=")) {
    throw badRequest(`Upstash-Cron: "${expression}" has a CRON_TZ prefix but no cron fields after it`);
  }
  const count = fields.split(" ").length;
  if (count !== 5) {
    throw badRequest(`Upstash-Cron: "${expression}" has ${count} field(s); use five: minute hour day-of-month month day-of-week`);
  }
  const parsed = { expression, fields, timezone };
  try {
    build(parsed);
  } catch (err) {
    throw badRequest(`Upstash-Cron: "${expression}" is not a valid cron expression: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parsed;
}

/** The first fire time strictly after `after` (ms), or null if the expression never fires again. */
export function nextFire(c: ParsedCron, after: number): number | null {
  const next = build(c).nextRun(new Date(after));
  return next ? next.getTime() : null;
}
