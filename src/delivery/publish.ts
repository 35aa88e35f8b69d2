/**
 * The publish pipeline shared by publish, enqueue, batch and DLQ retry: validate, deduplicate, fan out to a
 * URL group's endpoints, store, hand off.
 */
import { spillMessages } from "../db/blobs";
import { type Settings, settings } from "../config";
import { classifyDestination } from "../core/destination";
import { sha256Hex, utf8 } from "../core/encoding";
import { ApiError, badRequest, notFound } from "../core/errors";
import { NAME_RE } from "../core/ids";
import { newMessage } from "../core/message";
import { redactedForms } from "../core/redact";
import { type ConfigSource, type MessageSpec, parseSpec } from "../core/spec";
import type { StoredMessage } from "../core/types";
import { countQueues, ensureQueue, getQueue } from "../db/queues";
import { countMessages, dayOf, usedOn } from "../db/usage";
import { dedupResponse, takeDedup } from "../db/dedup";
import { type UrlGroup, getGroup } from "../db/topics";
import type { Env } from "../env";
import { acceptMessages } from "./accept";
import { workflowPublish } from "../workflow/publish";

export interface PublishInput {
  tenantId: string;
  /** URL or URL-group name, already taken from the path or the batch entry. */
  destination: string;
  cfg: ConfigSource;
  body: Uint8Array;
  callerIp: string | null;
  queueName: string | null;
  /** The request's waitUntil (keeps a shared group commit alive if the client goes away). */
  waitUntil?: (p: Promise<unknown>) => void;
  /** Set by POST /v2/batch: gathers the entries' writes into few commits, in entry order. */
  collector?: Collector;
  /** A waitForEvent's timeout message: it joins its run's history only if it fires (src/workflow/deliver.ts). */
  waiterTimeout?: { eventId: string };
}

/**
 * Gathers several publishes of one request into one commit. A publish that can share a commit (no dedup) is
 * only added; one that must commit alone (dedup), or that needs an exact queue count, flushes what was added
 * first, so writes and hand-offs keep the entries' order.
 */
export interface Collector {
  add(messages: StoredMessage[], extra: D1PreparedStatement[], now: number): Promise<void>;
  flush(): Promise<void>;
  /** Messages added and not yet committed (they count against the daily quota too). */
  pending(): number;
}

/**
 * Checks the tenant's daily message quota for `n` more messages (a 429 with the `RateLimit-*` headers the SDKs
 * read when they do not fit) and returns the statement that counts them, to commit with the messages. Concurrent
 * publishes read the same count, so a burst can pass the quota by the publishes in flight at that moment.
 */
async function withinQuota(env: Env, quota: number, input: PublishInput, n: number, now: number): Promise<D1PreparedStatement> {
  const day = dayOf(now);
  const used = (await usedOn(env.DB, input.tenantId, day)) + (input.collector?.pending() ?? 0);
  if (used + n > quota) {
    const reset = (day + 1) * 86_400;
    throw new ApiError(
      429,
      `daily message quota exceeded: ${used} of ${quota} messages published today (DAILY_MESSAGE_QUOTA); it resets at ${new Date(reset * 1000).toISOString()}`,
      { "RateLimit-Limit": String(quota), "RateLimit-Remaining": String(Math.max(0, quota - used)), "RateLimit-Reset": String(reset) },
    );
  }
  return countMessages(env.DB, input.tenantId, day, n);
}

export interface PublishOutput {
  status: 200 | 202;
  body: Record<string, unknown> | Record<string, unknown>[];
}

export function checkQueueName(name: string): string {
  if (!NAME_RE.test(name) || name.length > 256) {
    throw badRequest(`queue name "${name}" can only contain alphanumeric characters, hyphens, periods, and underscores`);
  }
  return name;
}

/** The dedup key: the explicit id, or a hash of destination, body, content type and forwarded headers. */
export async function dedupKey(spec: MessageSpec, destination: string, body: Uint8Array): Promise<string | null> {
  if (spec.deduplicationId !== null) return `id:${spec.deduplicationId}`;
  if (!spec.contentBasedDeduplication) return null;
  const headers = Object.keys(spec.headers)
    .sort()
    .map((k) => `${k}:${spec.headers[k].join(",")}`)
    .join("\n");
  const bodyHash = await sha256Hex(body);
  return `content:${await sha256Hex(utf8(`${destination}\n${bodyHash}\n${headers}`))}`;
}

export async function earlierResponse(db: D1Database, tenantId: string, key: string, now: number): Promise<PublishOutput | null> {
  const response = await dedupResponse(db, tenantId, key, now);
  if (response === null) return null;
  const original = JSON.parse(response) as PublishOutput["body"];
  const mark = (o: Record<string, unknown>) => ({ ...o, deduplicated: true });
  return { status: 202, body: Array.isArray(original) ? original.map(mark) : mark(original) };
}

/** Where a publish goes: one URL, or a URL group with its endpoints (looked up once). */
type Target = { kind: "url"; url: string } | { kind: "group"; group: UrlGroup };

async function resolveTarget(env: Env, s: Settings, input: PublishInput): Promise<Target> {
  const dest = classifyDestination(input.destination, s.allowPrivateDestinations);
  if (dest.kind === "url") return dest;
  const group = await getGroup(env.DB, input.tenantId, dest.name);
  if (!group || group.endpoints.length === 0) {
    throw notFound(`URL group "${dest.name}" not found; create it with POST /v2/topics/${dest.name}/endpoints`);
  }
  return { kind: "group", group };
}

/** A group's default headers under the publish's own configuration (which wins). */
function withDefaults(cfg: ConfigSource, defaults: Record<string, string>): ConfigSource {
  return {
    get: (name) => cfg.get(name) ?? defaults[name.toLowerCase()],
    names: () => [...new Set([...cfg.names(), ...Object.keys(defaults)])],
    requestHeaders: () => cfg.requestHeaders(),
  };
}

async function buildMessages(env: Env, input: PublishInput, spec: MessageSpec, target: Target, now: number): Promise<{ messages: StoredMessage[]; group: boolean }> {
  const redacted = await redactedForms(spec.redact, spec.headers, input.body);
  const base = { tenantId: input.tenantId, body: input.body, callerIp: input.callerIp, queueName: input.queueName, shard: env.SHARD ?? 0 };
  const make = (url: string, topicName: string | null, endpointName: string | null) => {
    const m = newMessage(spec, { ...base, url, topicName, endpointName }, now);
    m.redacted = redacted;
    return m;
  };
  if (target.kind === "url") return { messages: [make(target.url, null, null)], group: false };
  const g = target.group;
  return { messages: g.endpoints.map((e) => make(e.url, g.name, e.name || null)), group: true };
}

export async function publishMessage(env: Env, input: PublishInput, now: number): Promise<PublishOutput> {
  const s = settings(env);
  const target = await resolveTarget(env, s, input);
  const cfg = target.kind === "group" && target.group.defaultHeaders ? withDefaults(input.cfg, target.group.defaultHeaders) : input.cfg;
  const spec = parseSpec(cfg, s, now);
  if (cfg.get("upstash-queue-name") !== undefined) {
    throw badRequest("Upstash-Queue-Name applies to schedules; to enqueue, use POST /v2/enqueue/{queueName}/{destination}");
  }
  for (const name of ["Upstash-Cron", "Upstash-Schedule-Id"]) {
    if (cfg.get(name.toLowerCase()) !== undefined) {
      throw badRequest(`${name} applies to schedules; to create one, use POST /v2/schedules/{destination}`);
    }
  }
  if (spec.flowControl?.parallelism !== undefined && spec.flowControl.parallelism > s.maxParallelism) {
    throw new ApiError(
      412,
      `Upstash-Flow-Control-Value: parallelism ${spec.flowControl.parallelism} is above the maximum of ${s.maxParallelism} (MAX_PARALLELISM)`,
    );
  }
  if (input.queueName !== null) {
    checkQueueName(input.queueName);
    if (!(await getQueue(env.DB, input.tenantId, input.queueName))) {
      await input.collector?.flush(); // queues created by earlier entries must be counted
      if ((await countQueues(env.DB, input.tenantId)) >= s.maxQueues) {
        throw new ApiError(412, `the tenant already has the maximum of ${s.maxQueues} queues (MAX_QUEUES)`);
      }
    }
  }
  const { messages, group } = await buildMessages(env, input, spec, target, now);
  // A message of an Upstash Workflow run: the run starts, or the message joins its history (src/workflow/).
  const wfp = await workflowPublish(env, s.inlineBodyMax, cfg, spec, messages, now, input.waiterTimeout);
  if (wfp?.deduplicated) return { status: 200, body: { messageId: messages[0].id, deduplicated: true } };
  // A large body goes to R2 before its rows are written (one object for every message of a fan-out).
  await spillMessages(env, s.inlineBodyMax, messages);
  const key = await dedupKey(spec, input.destination, input.body);
  if (key !== null) {
    const earlier = await earlierResponse(env.DB, input.tenantId, key, now);
    if (earlier) return earlier;
  }
  const body = group ? messages.map((m) => ({ messageId: m.id, url: m.url })) : { messageId: messages[0].id };
  const extra: D1PreparedStatement[] = [...(wfp?.extra ?? [])];
  if (s.dailyMessageQuota !== null) extra.push(await withinQuota(env, s.dailyMessageQuota, input, messages.length, now));
  if (input.queueName !== null) extra.push(ensureQueue(env.DB, input.tenantId, input.queueName, now));
  if (key !== null) {
    // A plain INSERT: if another publish took this id meanwhile, the whole batch fails and nothing is stored.
    extra.push(...takeDedup(env.DB, input.tenantId, key, JSON.stringify(body), now, now + s.dedupWindowMs));
  }
  if (key === null && input.collector) {
    await input.collector.add(messages, extra, now);
    return { status: 200, body };
  }
  await input.collector?.flush();
  try {
    // Without dedup, every statement here succeeds regardless of other publishes, so the batch can be shared.
    await acceptMessages(env, messages, now, extra, { shareable: key === null, waitUntil: input.waitUntil });
  } catch (err) {
    if (key !== null && /UNIQUE constraint failed: dedup/i.test(String(err))) {
      const earlier = await earlierResponse(env.DB, input.tenantId, key, now);
      if (earlier) return earlier;
    }
    throw err;
  }
  return { status: 200, body };
}

