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

/** The next `n` fire times after `after` (ms), fewer if the expression stops firing. */
export function nextFires(c: ParsedCron, after: number, n: number): number[] {
  return build(c)
    .nextRuns(n, new Date(after))
    .map((d) => d.getTime());
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const MONTH_ABBR = MONTHS.map((m) => m.slice(0, 3).toUpperCase());
const DAY_ABBR = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/** One field's list items in words: "5", "1 through 5", "every 15th from 0"; names through `names` when given. */
function listWords(field: string, names?: string[], abbr?: string[], base = 0): string {
  const name = (v: string) => {
    const up = v.toUpperCase();
    const i = abbr ? abbr.indexOf(up) : -1;
    if (names && i >= 0) return names[i];
    if (names && /^\d+$/.test(v)) return names[Number(v) - base] ?? v;
    return v;
  };
  return field
    .split(",")
    .map((part) => {
      const [range, step] = part.split("/");
      const r = range === "*" ? "" : range.includes("-") ? range.split("-").map(name).join(" through ") : name(range);
      if (step) return r ? `every ${step} from ${r}` : `every ${step}`;
      return r;
    })
    .join(", ");
}

const pad2 = (v: string) => v.padStart(2, "0");

/** A five-field cron expression in plain English, e.g. "At 09:30, Monday through Friday (UTC)". */
export function describeCron(c: ParsedCron): string {
  const [min, hour, dom, mon, dow] = c.fields.split(" ");
  const num = /^\d+$/;
  let when: string;
  if (min === "*" && hour === "*") when = "Every minute";
  else if (/^\*\/\d+$/.test(min) && hour === "*") when = `Every ${min.slice(2)} minutes`;
  else if (num.test(min) && hour === "*") when = `At minute ${min} of every hour`;
  else if (num.test(min) && /^\*\/\d+$/.test(hour)) when = `At minute ${min} of every ${hour.slice(2)} hours`;
  else if (num.test(min) && /^\d+(,\d+)*$/.test(hour)) when = `At ${hour.split(",").map((h) => `${pad2(h)}:${pad2(min)}`).join(", ")}`;
  else if ((min === "*" || /^\*\/\d+$/.test(min)) && /^\d+(-\d+)?$/.test(hour)) {
    const [from, to] = hour.split("-");
    when = `${min === "*" ? "Every minute" : `Every ${min.slice(2)} minutes`} from ${pad2(from)}:00 through ${pad2(to ?? from)}:59`;
  }
  else when = `At minute ${listWords(min)} of hour ${listWords(hour)}`;
  const parts = [when];
  if (dom !== "*") parts.push(`on day ${listWords(dom)} of the month`);
  if (mon !== "*") parts.push(`in ${listWords(mon, MONTHS, MONTH_ABBR, 1)}`);
  if (dow !== "*") parts.push(`${dom !== "*" ? "or " : ""}on ${listWords(dow, DAYS, DAY_ABBR)}`);
  return `${parts.join(", ")} (${c.timezone ?? "UTC"})`;
}
