/** /v2/topics: URL groups. A publish to a group fans out into one message per endpoint. */
import { type Context, Hono } from "hono";
import type { AppEnv } from "../app";
import { settings } from "../config";
import { checkUrl } from "../core/destination";
import { ApiError, badRequest, notFound } from "../core/errors";
import { NAME_RE } from "../core/ids";
import { objectConfig, parseSpec } from "../core/spec";
import { scheduleAimedAt } from "../db/schedules";
import { type Endpoint, type UrlGroup, addEndpoints, countGroups, deleteGroup, getGroup, listGroups, removeEndpoints, setGroupDefaults } from "../db/topics";
import { methodNotAllowed, readJson } from "./common";

export const topics = new Hono<AppEnv>();

function groupName(c: Context<AppEnv>): string {
  const name = c.req.param("name") ?? "";
  if (!NAME_RE.test(name)) {
    throw badRequest(`URL group name "${name}" can only contain alphanumeric characters, hyphens, periods, and underscores`);
  }
  return name;
}

async function endpointsOf(c: Context<AppEnv>): Promise<{ url?: unknown; name?: unknown }[]> {
  // 1,000 endpoints with long URLs stay far below 1 MiB.
  const body = await readJson(c, 1 << 20, '{"endpoints": [{"url": "https://...", "name": "optional"}]}');
  const list = (body as { endpoints?: unknown })?.endpoints;
  if (!Array.isArray(list) || list.length === 0) throw badRequest('"endpoints" must be a non-empty array');
  for (const e of list) if (!e || typeof e !== "object") throw badRequest("each endpoint must be an object with url and/or name");
  return list as { url?: unknown; name?: unknown }[];
}

topics.post("/topics/:name/endpoints", async (c) => {
  const s = settings(c.env);
  const name = groupName(c);
  const raw = await endpointsOf(c);
  const endpoints: Endpoint[] = raw.map((e) => {
    if (typeof e.url !== "string") throw badRequest("each endpoint needs a url string");
    const ename = e.name ?? "";
    if (typeof ename !== "string" || (ename !== "" && !NAME_RE.test(ename))) {
      throw badRequest(`endpoint name ${JSON.stringify(e.name)} can only contain alphanumeric characters, hyphens, periods, and underscores`);
    }
    return { url: checkUrl(e.url, s.allowPrivateDestinations, "endpoint"), name: ename };
  });
  const tenantId = c.get("tenant").id;
  const existing = await getGroup(c.env.DB, tenantId, name);
  if (!existing && (await countGroups(c.env.DB, tenantId)) >= s.maxUrlGroups) {
    throw new ApiError(412, `the tenant already has the maximum of ${s.maxUrlGroups} URL groups (MAX_URL_GROUPS)`);
  }
  const urls = new Set([...(existing?.endpoints ?? []).map((e) => e.url), ...endpoints.map((e) => e.url)]);
  if (urls.size > s.maxEndpointsPerGroup) {
    throw new ApiError(412, `a URL group can have at most ${s.maxEndpointsPerGroup} endpoints (MAX_ENDPOINTS_PER_GROUP)`);
  }
  await addEndpoints(c.env.DB, tenantId, name, endpoints, Date.now());
  return c.json({});
});

topics.delete("/topics/:name/endpoints", async (c) => {
  const name = groupName(c);
  const raw = await endpointsOf(c);
  const targets = raw.map((e) => {
    // An empty or null field is not given (the Go SDK sends "url": "" when it removes by name); given both,
    // the endpoint must match both.
    const t: { url?: string; name?: string } = {};
    for (const field of ["url", "name"] as const) {
      const v = e[field];
      if (v === undefined || v === null || v === "") continue;
      if (typeof v !== "string") throw badRequest(`endpoint ${field} to remove must be a string, got ${JSON.stringify(v)}`);
      t[field] = v;
    }
    if (t.url === undefined && t.name === undefined) throw badRequest("each endpoint to remove needs a url or a name");
    return t;
  });
  // Removing endpoints from a group that does not exist changes nothing and succeeds, like deleting it.
  await removeEndpoints(c.env.DB, c.get("tenant").id, name, targets, Date.now());
  return c.json({});
});

/** A group as the API shows it: exactly name, createdAt, updatedAt and endpoints (the SDKs compare shapes). */
const view = (g: UrlGroup) => ({ name: g.name, createdAt: g.createdAt, updatedAt: g.updatedAt, endpoints: g.endpoints });

topics.get("/topics", async (c) => c.json((await listGroups(c.env.DB, c.get("tenant").id)).map(view)));

topics.get("/topics/:name", async (c) => {
  const g = await getGroup(c.env.DB, c.get("tenant").id, groupName(c));
  if (!g) throw notFound(`URL group ${c.req.param("name")} not found`);
  return c.json(view(g));
});

const PATCH_EXAMPLE = '{"headers": {"Upstash-Header-Forward": ["true"], "Upstash-Retries": "3"}}';

/**
 * Default configuration of a group: `Upstash-*` headers (and `Content-Type`) merged under every publish to it; a
 * publish's own headers win. A value is a string or a list of strings (joined with ", "). `{"headers": {}}` clears
 * them. The values are checked the way a publish checks them, so a bad default fails here, not on every publish.
 */
topics.patch("/topics/:name", async (c) => {
  const s = settings(c.env);
  const name = groupName(c);
  const body = await readJson(c, 64 * 1024, PATCH_EXAMPLE);
  const raw = (body as { headers?: unknown } | null)?.headers;
  if (!body || typeof body !== "object" || Array.isArray(body) || !raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw badRequest(`the body must be a JSON object with a "headers" object, like ${PATCH_EXAMPLE}`);
  }
  const unknown = Object.keys(body).filter((k) => k !== "headers");
  if (unknown.length) throw badRequest(`unknown field ${JSON.stringify(unknown[0])}; the body is like ${PATCH_EXAMPLE}`);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    const key = k.toLowerCase();
    if (!key.startsWith("upstash-") && key !== "content-type") {
      throw badRequest(`header "${k}": only Upstash-* configuration headers and Content-Type can be group defaults`);
    }
    if (NOT_GROUP_DEFAULTS.has(key)) throw badRequest(`header "${k}" cannot be a URL group default`);
    if (typeof v === "string") headers[key] = v;
    else if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "string")) headers[key] = v.join(", ");
    else throw badRequest(`header "${k}" must be a string or a non-empty list of strings, got ${JSON.stringify(v)}`);
  }
  parseSpec(objectConfig(headers), s, Date.now());
  const tenantId = c.get("tenant").id;
  if (!(await setGroupDefaults(c.env.DB, tenantId, name, Object.keys(headers).length ? headers : null, Date.now()))) {
    throw notFound(`URL group ${name} not found; create it with POST /v2/topics/${name}/endpoints`);
  }
  return c.json({});
});

/** Headers that name what a publish is, not how it is delivered. */
const NOT_GROUP_DEFAULTS = new Set(["upstash-cron", "upstash-schedule-id", "upstash-queue-name", "upstash-deduplication-id"]);

topics.delete("/topics/:name", async (c) => {
  const tenantId = c.get("tenant").id;
  const name = groupName(c);
  const used = await scheduleAimedAt(c.env.DB, tenantId, name);
  if (used) throw badRequest(`URL group ${name} is the destination of schedule ${used}; delete the schedule first`);
  // Idempotent, as hosted: deleting a group that does not exist succeeds and changes nothing (the SDKs' own tests
  // delete a group before creating it).
  await deleteGroup(c.env.DB, tenantId, name);
  return c.json({});
});

topics.all("/topics/:name/endpoints", methodNotAllowed);
topics.all("/topics/:name", methodNotAllowed);
topics.all("/topics", methodNotAllowed);
