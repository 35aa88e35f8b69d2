/**
 * How far the deliveries queue lags, as this isolate last saw it. Every hand-off's answer carries the queue's
 * backlog metrics (Queue.send / sendBatch); the age of its oldest waiting message is how long a new one waits
 * before a consumer takes it. Publishes are refused while that lag is past MAX_QUEUE_LAG (app.ts, push-back), so
 * an embedded server offered more than it delivers keeps its backlog short instead of accepting without end.
 */

/** A sighting is trusted this long: refusals mean fewer hand-offs, so an old one must not refuse forever. */
const FRESH_MS = 500;

let oldestAt: number | null = null;
let seenAt = 0;

/** Records the metrics of a hand-off's answer (absent or malformed metrics are ignored). */
export function noteQueueMetrics(answer: unknown, now = Date.now()): void {
  const metrics = (answer as { metadata?: { metrics?: { backlogCount?: unknown; oldestMessageTimestamp?: unknown } } } | undefined)?.metadata?.metrics;
  if (!metrics || typeof metrics.backlogCount !== "number") return;
  const oldest = metrics.oldestMessageTimestamp;
  const at = oldest instanceof Date ? oldest.getTime() : typeof oldest === "string" || typeof oldest === "number" ? new Date(oldest).getTime() : NaN;
  oldestAt = metrics.backlogCount > 0 && Number.isFinite(at) && at > 0 ? at : null;
  seenAt = now;
}

/** The queue's lag in ms as last seen, or 0 when it was empty or the sighting is too old to trust. */
export function queueLagMs(now = Date.now()): number {
  if (oldestAt === null || now - seenAt > FRESH_MS) return 0;
  return Math.max(0, seenAt - oldestAt);
}
