/** Builds SQL conditions for Filters over the messages table (alias m) and a joined table. */
import type { Filters } from "../core/filters";

export interface Where {
  sql: string[];
  params: unknown[];
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

  /** `column IN (values)` with the whole list bound as one JSON parameter (D1 allows at most 100). */
  in(column: string, values: readonly unknown[] | undefined): this {
    if (!values || values.length === 0) return this;
    return this.add((p) => `${column} IN (SELECT value FROM json_each(${p(JSON.stringify(values))}))`);
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
  w.in("json_extract(m.flow_control, '$.key')", v("flowControlKey"));
  const labels = v("label");
  if (labels) {
    w.add((p) => `EXISTS (SELECT 1 FROM json_each(m.labels) l WHERE l.value IN (SELECT value FROM json_each(${p(JSON.stringify(labels))})))`);
  }
  const hosts = v("host");
  if (hosts) {
    // The host is what follows the scheme's "://" up to "/", ":", "?" or the end, compared case-insensitively.
    // (String functions rather than LIKE: D1 caps LIKE patterns at 50 bytes.)
    const list = JSON.stringify(hosts.map((h) => h.toLowerCase()));
    w.add(
      (p) => `EXISTS (SELECT 1 FROM json_each(${p(list)}) h WHERE
        substr(lower(m.url), instr(m.url, '://') + 3, length(h.value)) = h.value
        AND substr(m.url, instr(m.url, '://') + 3 + length(h.value), 1) IN ('', '/', ':', '?'))`,
    );
  }
  const paths = v("path");
  if (paths) {
    w.add((p) => `EXISTS (SELECT 1 FROM json_each(${p(JSON.stringify(paths))}) pt WHERE instr(m.url, pt.value) > 0)`);
  }
}
