/** One signed HTTP attempt of a message, with its timeout and a capped read of the response. */
import type { Settings } from "../config";
import { isPrivateHost } from "../core/destination";
import { formatSeconds } from "../core/duration";
import { canonicalName, type HeaderMap, headerPairs, headersToMap } from "../core/headers";
import { signDelivery } from "../core/signing";
import type { AttemptResult, StoredMessage } from "../core/types";

/** Reads at most `limit` bytes of a body; reports whether more was there. */
async function readCapped(res: Response, limit: number): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  const body = res.body;
  if (!body) return { bytes: new Uint8Array(0), truncated: false };
  // A declared length within the limit: one native read (most answers are small and say how long they are).
  const declared = res.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared) && Number(declared) <= limit && !res.headers.has("transfer-encoding") && !res.headers.has("content-encoding")) {
    return { bytes: new Uint8Array(await res.arrayBuffer()), truncated: false };
  }
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (size + value.length > limit) {
      chunks.push(value.subarray(0, limit - size));
      size = limit;
      truncated = true;
      await reader.cancel();
      break;
    }
    chunks.push(value);
    size += value.length;
  }
  const bytes = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    bytes.set(c, off);
    off += c.length;
  }
  return { bytes, truncated };
}

/**
 * The destination is checked again at delivery time: a message, schedule or URL-group endpoint stored while
 * private destinations were allowed must not be called once they are not. Returns why it is refused, or null.
 */
function refusedDestination(url: string, s: Settings): string | null {
  if (s.allowPrivateDestinations) return null;
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    return `the destination ${url} is not a valid URL; it was not called`;
  }
  if (!isPrivateHost(host)) return null;
  return `the destination host ${host} is a loopback, private or reserved address, which this deployment does not call (set ALLOW_PRIVATE_DESTINATIONS=true to allow it); it was not called`;
}

/**
 * The request headers a destination receives (contract §4.1), as the pairs a `Headers` object would yield
 * (`headerPairs`). Throws a TypeError for a stored header that cannot be sent.
 */
export function deliveryHeaders(m: StoredMessage, signature: string, s: Settings): [string, string][] {
  const set: [string, string][] = [
    ["User-Agent", "Upstash-QStash"],
    ["Upstash-Signature", signature],
    ["Upstash-Message-Id", m.id],
    ["Upstash-Retried", String(m.retried)],
  ];
  if (m.topicName) set.push(["Upstash-Topic-Name", m.topicName]);
  if (m.scheduleId) set.push(["Upstash-Schedule-Id", m.scheduleId]);
  if (m.callerIp) set.push(["Upstash-Caller-Ip", m.callerIp]);
  if (s.regionLabel) set.push(["Upstash-Region", s.regionLabel]);
  return headerPairs(m.headers, set);
}

/** One outgoing call, built and signed by the worker: made by it (`send`), or by the relay (src/delivery/relay.ts). */
export interface Outgoing {
  url: string;
  method: string;
  headers: [string, string][];
  body: Uint8Array | null;
  /** Aborted after this long. */
  timeoutMs: number;
  /** At most this many bytes of the answer's body are kept. */
  limit: number;
}

/** What came of an outgoing call: an answer (of any status), or no answer. */
export type Reply =
  | { status: number; headers: HeaderMap; body: Uint8Array; truncated: boolean }
  | { failed: string; timedOut: boolean };

/** Makes one outgoing call from this isolate, with its time limit and a capped read of the answer. */
export async function send(o: Outgoing): Promise<Reply> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, o.timeoutMs);
  try {
    const res = await fetch(o.url, {
      method: o.method,
      headers: o.headers,
      body: o.body ?? undefined,
      redirect: "manual",
      signal: controller.signal,
    });
    const { bytes, truncated } = await readCapped(res, o.limit);
    return { status: res.status, headers: headersToMap(res.headers), body: bytes, truncated };
  } catch (err) {
    return { failed: err instanceof Error ? err.message : String(err), timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/** Sends outgoing calls elsewhere (the relay of `npm start`) instead of from this isolate. */
export interface Sender {
  send(o: Outgoing): Promise<Reply>;
}

/**
 * `budgetMs`, when given, cuts the attempt short of its own timeout; such a cut comes back with `outOfBudget`
 * (the caller must not record it as the message's outcome). `via` makes the call elsewhere (see `Sender`).
 */
export async function attempt(m: StoredMessage, signingKey: string, s: Settings, budgetMs?: number, via?: Sender): Promise<AttemptResult> {
  const refused = refusedDestination(m.url, s);
  if (refused) return { status: 0, headers: {}, body: new Uint8Array(0), bodyTruncated: false, error: refused, nonRetryable: true };
  const hasBody = m.method !== "GET" && m.method !== "HEAD";
  const body = hasBody ? m.body : new Uint8Array(0);
  const signature = await signDelivery({
    key: signingKey,
    url: m.url,
    body,
    nowS: Math.floor(Date.now() / 1000),
    lifetimeS: s.jwtLifetimeS,
  });
  let headers: [string, string][];
  try {
    headers = deliveryHeaders(m, signature, s);
  } catch (err) {
    // Refused at publish (core/spec.ts); a message stored before that check fails for good rather than going back to the queue.
    const why = err instanceof Error ? err.message : String(err);
    return { status: 0, headers: {}, body: new Uint8Array(0), bodyTruncated: false, error: `the message's headers cannot be sent: ${why}; it was not called`, nonRetryable: true };
  }
  const timeoutMs = m.timeoutMs ?? s.maxTimeoutMs;
  const capped = budgetMs !== undefined && budgetMs < timeoutMs;
  const out: Outgoing = {
    url: m.url,
    method: m.method,
    headers,
    body: hasBody ? body : null,
    timeoutMs: capped ? Math.max(0, budgetMs) : timeoutMs,
    limit: s.maxMessageSize,
  };
  const reply = via ? await via.send(out) : await send(out);
  if ("failed" in reply) {
    if (reply.timedOut && capped) {
      return { status: 0, headers: {}, body: new Uint8Array(0), bodyTruncated: false, error: "cut at the time budget", nonRetryable: false, outOfBudget: true };
    }
    const reason = reply.timedOut
      ? `the call timed out after ${formatSeconds(timeoutMs)} (Upstash-Timeout)`
      : `the call failed with no response: ${reply.failed}`;
    return { status: 0, headers: {}, body: new Uint8Array(0), bodyTruncated: false, error: reason, nonRetryable: false };
  }
  const ok = reply.status >= 200 && reply.status < 300;
  return {
    status: reply.status,
    headers: reply.headers,
    body: reply.body,
    bodyTruncated: reply.truncated,
    error: ok ? null : `the destination answered with status ${reply.status}`,
    nonRetryable: reply.status === 489 && reply.headers[canonicalName("upstash-nonretryable-error")]?.[0]?.toLowerCase() === "true",
  };
}
