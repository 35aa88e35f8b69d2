/** Builds SQL conditions for Filters over the messages table (alias m) and a joined table. */
import type { Filters } from "../core/filters";

export interface Where {
  sql: string[];
  params: unknown[];
}

function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => "\\" + c);
}

export class WhereBuilder implements Where {
  sql: string[] = [];
  params: unknown[] = [];

  /** Adds `?` placeholders numbered after the existing ones. */
  add(fragment: (p: (v: unknown) => string) => string): this {
    this.sql.push(fragment((v) => {
      this.params.push(v);
      return `?${this.params.length}`;
    }));
    return this;
  }

  in(column: string, values: string[] | undefined): this {
    if (!values || values.length === 0) return this;
    return this.add((p) => `${column} IN (${values.map((v) => p(v)).join(", ")})`);
  }

  toSql(): string {
    return this.sql.length ? this.sql.join(" AND ") : "1";
  }
}

/** Conditions on message columns shared by logs, DLQ and bulk cancel. */
export function messageConditions(w: WhereBuilder, f: Filters): void {
  const v = (k: string) => f.values.get(k);
  w.in("m.url", v("url"));
  w.in("m.topic_name", v("topicName"));
  w.in("m.schedule_id", v("scheduleId"));
  w.in("m.queue_name", v("queueName"));
  w.in("m.caller_ip", v("callerIp"));
  const fck = v("flowControlKey");
  if (fck) w.add((p) => `json_extract(m.flow_control, '$.key') IN (${fck.map((x) => p(x)).join(", ")})`);
  const labels = v("label");
  if (labels) {
    w.add((p) => `EXISTS (SELECT 1 FROM json_each(m.labels) WHERE json_each.value IN (${labels.map((x) => p(x)).join(", ")}))`);
  }
  const hosts = v("host");
  if (hosts) {
    w.add(
      (p) =>
        "(" +
        hosts
          .map((h) => {
            const e = escapeLike(h.toLowerCase());
            const a = p(`%://${e}`);
            const b = p(`%://${e}/%`);
            const c = p(`%://${e}:%`);
            const d = p(`%://${e}?%`);
            return `lower(m.url) LIKE ${a} ESCAPE '\\' OR lower(m.url) LIKE ${b} ESCAPE '\\' OR lower(m.url) LIKE ${c} ESCAPE '\\' OR lower(m.url) LIKE ${d} ESCAPE '\\'`;
          })
          .join(" OR ") +
        ")",
    );
  }
  const paths = v("path");
  if (paths) {
    w.add((p) => "(" + paths.map((x) => `m.url LIKE ${p(`%://%${escapeLike(x)}%`)} ESCAPE '\\'`).join(" OR ") + ")");
  }
}
