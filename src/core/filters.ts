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

/**
 * One filter as it arrived: a query-string value (a comma-separated list) or a list already split, as a JSON
 * body sends it.
 */
export type FilterEntry = readonly [key: string, value: string | readonly string[]];

export function parseFilters(query: Iterable<FilterEntry>, rules: FilterRules): Filters {
  const out: Filters = { values: new Map(), fromDate: null, toDate: null, cursor: null, count: null, order: "desc" };
  const allowed = new Set(rules.allowed);
  for (const [rawKey, given] of query) {
    if (rawKey.toLowerCase().startsWith("upstash-")) continue;
    const rawValue = typeof given === "string" ? given : given.join(",");
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
    const parts = (typeof given === "string" ? given.split(",") : given).map((v) => v.trim());
    if (parts.some((p) => p === "")) throw badRequest(`filter "${rawKey}" has an empty value`);
    const list = out.values.get(key) ?? [];
    list.push(...parts);
    out.values.set(key, list);
  }
  return out;
}

/** Keys a JSON body may never carry: they only mean something in a URL. */
const URL_ONLY = new Set(["qstash_token"]);

/**
 * The filters of a bulk call sent as a JSON object, as the Python and Go SDKs do (`{"messageIds": [...]}`,
 * `{"dlqIds": [...]}`), turned into entries for `parseFilters`. A value is a string, an integer, or a list of
 * them; null, booleans, objects and fractions are refused, never read as "no filter". An empty list of ids
 * (`idKeys`) names nothing: `emptyIds` is then true and the call must act on nothing. Any other empty list is
 * refused like an empty query value. Unknown keys are left for `parseFilters` to refuse.
 */
export function bodyFilterEntries(body: unknown, idKeys: readonly string[]): { entries: FilterEntry[]; emptyIds: boolean } {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw badRequest(`the body must be a JSON object of filters, like {"${idKeys[0]}": ["..."]}`);
  }
  const entries: FilterEntry[] = [];
  let emptyIds = false;
  const text = (key: string, v: unknown): string => {
    if (typeof v === "string") return v;
    if (typeof v === "number" && Number.isSafeInteger(v)) return String(v);
    throw badRequest(`body field "${key}": ${JSON.stringify(v)} is not a string or an integer`);
  };
  for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
    if (URL_ONLY.has(key) || key.toLowerCase().startsWith("upstash-")) {
      throw badRequest(`body field "${key}" is not a filter; send it as a header or in the query string`);
    }
    if (Array.isArray(value)) {
      if (value.length === 0) {
        if (!idKeys.includes(key)) throw badRequest(`body field "${key}" is an empty list`);
        emptyIds = true;
        continue;
      }
      entries.push([key, value.map((v) => text(key, v))]);
    } else {
      entries.push([key, [text(key, value)]]);
    }
  }
  return { entries, emptyIds };
}

/** True when the filters name something to match (not only paging). */
export function namesAFilter(f: Filters): boolean {
  return f.values.size > 0 || f.fromDate !== null || f.toDate !== null;
}
