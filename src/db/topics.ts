/** URL groups (topics) and their endpoints. */
export interface Endpoint {
  name: string;
  url: string;
}

export interface UrlGroup {
  name: string;
  createdAt: number;
  updatedAt: number;
  endpoints: Endpoint[];
  /** Configuration headers (lowercase names) merged under every publish to the group (PATCH /v2/topics/{name}). */
  defaultHeaders: Record<string, string> | null;
}

type Row = { name: string; created_at: number; updated_at: number; default_headers: string | null };
type EndpointRow = { topic: string; name: string; url: string };

function assemble(groups: Row[], endpoints: EndpointRow[]): UrlGroup[] {
  return groups.map((g) => ({
    name: g.name,
    createdAt: Number(g.created_at),
    updatedAt: Number(g.updated_at),
    endpoints: endpoints.filter((e) => e.topic === g.name).map((e) => ({ name: e.name, url: e.url })),
    defaultHeaders: g.default_headers ? (JSON.parse(g.default_headers) as Record<string, string>) : null,
  }));
}

export async function getGroup(db: D1Database, tenantId: string, name: string): Promise<UrlGroup | null> {
  const [g, e] = await db.batch([
    db.prepare("SELECT name, created_at, updated_at, default_headers FROM topics WHERE tenant_id = ?1 AND name = ?2").bind(tenantId, name),
    db.prepare("SELECT topic, name, url FROM topic_endpoints WHERE tenant_id = ?1 AND topic = ?2 ORDER BY position").bind(tenantId, name),
  ]);
  const groups = g.results as Row[];
  return groups.length ? assemble(groups, e.results as EndpointRow[])[0] : null;
}

export async function listGroups(db: D1Database, tenantId: string): Promise<UrlGroup[]> {
  const [g, e] = await db.batch([
    db.prepare("SELECT name, created_at, updated_at, default_headers FROM topics WHERE tenant_id = ?1 ORDER BY created_at, name").bind(tenantId),
    db.prepare("SELECT topic, name, url FROM topic_endpoints WHERE tenant_id = ?1 ORDER BY position").bind(tenantId),
  ]);
  return assemble(g.results as Row[], e.results as EndpointRow[]);
}

/** Adds endpoints (an endpoint whose URL is already there is renamed, not duplicated); creates the group. */
/** Endpoints per INSERT: URLs are short, so 250 of them stay far below D1's 2 MB value limit. */
const ENDPOINTS_PER_STATEMENT = 250;

export async function addEndpoints(db: D1Database, tenantId: string, name: string, endpoints: Endpoint[], now: number): Promise<void> {
  const stmts: D1PreparedStatement[] = [
    db
      .prepare(
        `INSERT INTO topics (tenant_id, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (tenant_id, name) DO UPDATE SET updated_at = excluded.updated_at`,
      )
      .bind(tenantId, name, now),
  ];
  // One statement per chunk of endpoints (as JSON), not one per endpoint: 1,000 endpoints stay a few queries.
  for (let start = 0; start < endpoints.length; start += ENDPOINTS_PER_STATEMENT) {
    const rows = endpoints.slice(start, start + ENDPOINTS_PER_STATEMENT).map((e, i) => [e.url, e.name, now * 1000 + start + i]);
    stmts.push(
      db
        .prepare(
          `INSERT INTO topic_endpoints (tenant_id, topic, url, name, position)
           SELECT ?1, ?2, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]')
           FROM json_each(?3) j WHERE true
           ON CONFLICT (tenant_id, topic, url) DO UPDATE SET name = excluded.name`,
        )
        .bind(tenantId, name, JSON.stringify(rows)),
    );
  }
  await db.batch(stmts);
}

/** Removes endpoints by URL or name; removing the last one deletes the group. False when the group is unknown. */
export async function removeEndpoints(
  db: D1Database,
  tenantId: string,
  name: string,
  endpoints: { url?: string; name?: string }[],
  now: number,
): Promise<boolean> {
  // An endpoint named by url and name must match both: a field given is never ignored.
  const stmts = endpoints.map((e) =>
    db
      .prepare(
        `DELETE FROM topic_endpoints WHERE tenant_id = ?1 AND topic = ?2
         AND (?3 IS NULL OR url = ?3) AND (?4 IS NULL OR name = ?4) AND (?3 IS NOT NULL OR ?4 IS NOT NULL)`,
      )
      .bind(tenantId, name, e.url ?? null, e.name ?? null),
  );
  const exists = await db.prepare("SELECT 1 AS x FROM topics WHERE tenant_id = ?1 AND name = ?2").bind(tenantId, name).first();
  if (!exists) return false;
  stmts.push(
    db.prepare("UPDATE topics SET updated_at = ?3 WHERE tenant_id = ?1 AND name = ?2").bind(tenantId, name, now),
    db
      .prepare(
        `DELETE FROM topics WHERE tenant_id = ?1 AND name = ?2
         AND NOT EXISTS (SELECT 1 FROM topic_endpoints WHERE tenant_id = ?1 AND topic = ?2)`,
      )
      .bind(tenantId, name),
  );
  await db.batch(stmts);
  return true;
}

export async function deleteGroup(db: D1Database, tenantId: string, name: string): Promise<boolean> {
  const [, g] = await db.batch([
    db.prepare("DELETE FROM topic_endpoints WHERE tenant_id = ?1 AND topic = ?2").bind(tenantId, name),
    db.prepare("DELETE FROM topics WHERE tenant_id = ?1 AND name = ?2").bind(tenantId, name),
  ]);
  return g.meta.changes > 0;
}

export async function countGroups(db: D1Database, tenantId: string): Promise<number> {
  return Number(await db.prepare("SELECT count(*) AS n FROM topics WHERE tenant_id = ?1").bind(tenantId).first("n"));
}

/** Replaces a group's default headers (null clears them). Returns false if the group does not exist. */
export async function setGroupDefaults(db: D1Database, tenantId: string, name: string, headers: Record<string, string> | null, now: number): Promise<boolean> {
  const { meta } = await db
    .prepare("UPDATE topics SET default_headers = ?3, updated_at = ?4 WHERE tenant_id = ?1 AND name = ?2")
    .bind(tenantId, name, headers ? JSON.stringify(headers) : null, now)
    .run();
  return meta.changes > 0;
}
