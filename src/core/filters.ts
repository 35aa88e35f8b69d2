/** Query-string filters for list and bulk endpoints: multi-value, validated, unknown keys refused. */
import { badRequest } from "./errors";

export interface Filters {
  values: Map<string, string[]>;
  fromDate: number | null;
  toDate: number | null;
  cursor: string | null;
  count: number | null;
  order: "asc" | "desc";
}

/** Keys that hold a list of values; the rest are single values. Aliases map to one canonical key. */
const ALIASES: Record<string, string> = { callerIP: "callerIp", messageIds: "messageId" };

const NOT_FILTERS = new Set(["cursor", "count", "order", "fromDate", "toDate", "qstash_token"]);

export interface FilterRules {
  /** Filter keys this endpoint accepts (canonical spelling). */
  allowed: readonly string[];
  /** Refuse unknown keys with a 400 (bulk mutations and DLQ) or ignore them (logs). */
  strict: boolean;
  /** Keys named in the 400 for a DLQ `host`/`path`. */
  refused?: readonly string[];
  maxCount: number;
}

function parseMs(key: string, value: string): number {
  if (!/^\d+$/.test(value)) throw badRequest(`${key}: "${value}" is not a Unix timestamp in milliseconds`);
  return Number(value);
}

export function parseFilters(query: URLSearchParams, rules: FilterRules): Filters {
  const out: Filters = { values: new Map(), fromDate: null, toDate: null, cursor: null, count: null, order: "desc" };
  const allowed = new Set(rules.allowed);
  for (const [rawKey, rawValue] of query) {
    if (rawKey.toLowerCase().startsWith("upstash-")) continue;
    const key = ALIASES[rawKey] ?? rawKey;
    if (key === "cursor") {
      out.cursor = rawValue === "" ? null : rawValue;
      continue;
    }
    if (key === "count") {
      if (!/^\d+$/.test(rawValue) || Number(rawValue) < 1) {
        throw badRequest(`count: "${rawValue}" must be a positive integer (at most ${rules.maxCount})`);
      }
      out.count = Math.min(Number(rawValue), rules.maxCount);
      continue;
    }
    if (key === "order") {
      const o = rawValue.toLowerCase();
      if (o === "asc" || o === "latestlast" || o === "earliestfirst") out.order = "asc";
      else if (o === "desc" || o === "latestfirst" || o === "earliestlast") out.order = "desc";
      else throw badRequest(`order: "${rawValue}" must be asc or desc`);
      continue;
    }
    if (key === "fromDate") {
      out.fromDate = parseMs(key, rawValue);
      continue;
    }
    if (key === "toDate") {
      out.toDate = parseMs(key, rawValue);
      continue;
    }
    if (NOT_FILTERS.has(key)) continue;
    if (rules.refused?.includes(key)) {
      throw badRequest(`filter "${key}" is not supported here; filter by url instead`);
    }
    if (!allowed.has(key)) {
      if (rules.strict) {
        throw badRequest(`unknown filter "${rawKey}"; valid filters are ${[...rules.allowed, "fromDate", "toDate"].join(", ")}`);
      }
      continue;
    }
    const parts = rawValue.split(",").map((v) => v.trim());
    if (parts.some((p) => p === "")) throw badRequest(`filter "${rawKey}" has an empty value`);
    const list = out.values.get(key) ?? [];
    list.push(...parts);
    out.values.set(key, list);
  }
  return out;
}
