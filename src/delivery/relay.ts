/**
 * The worker's side of the attempt relay of `npm start`: a Node process (scripts/relay.mjs) that makes the outgoing
 * calls of attempts, so that the runtime thread holding D1, the queue and the Durable Objects does not spend most of
 * its time on sockets.
 *
 * workerd runs a process's workers on one thread. Locally, everything else of Boomerang lives in that process, and an
 * outgoing HTTP call costs it more than the rest of a delivery (docs/architecture.md, "Serving modes"). The worker
 * still builds and signs each request; a `RelayBatch` gathers the requests of one batch of attempts into one call to
 * the relay, which makes them all at once and streams back each answer as it comes, so a slow destination holds up
 * no other. Calls the relay did not answer (it is gone, or it failed) are made directly, as without it.
 *
 * The protocol: a POST with the secret header, one JSON `WireOutgoing` per line; the answer streams one JSON
 * `WireReply` per line, `i` being the call's line number. The relay reports an answer's headers as the pairs it got,
 * and they are folded here as `fetch`'s own `Headers` would fold them (`pairsToMap`).
 *
 * On a deployment there is no relay (the RELAY binding is unset): every attempt is a `fetch` of its own.
 */
import { base64ToBytes, bytesToBase64 } from "../core/encoding";
import { pairsToMap } from "../core/headers";
import type { Env } from "../env";
import { type Outgoing, type Reply, type Sender, send } from "./attempt";

/** The header that carries the relay's secret: only the worker that started it may use it. */
export const RELAY_SECRET_HEADER = "x-boomerang-relay-secret";
/** The most calls, and about the most body bytes, one relay request carries. */
export const RELAY_BATCH = 100;
const RELAY_BATCH_BYTES = 4 << 20;
/** Room the relay gets past the longest time limit of a request before its calls are made directly. */
const RELAY_GRACE_MS = 10_000;

type WireOutgoing = Omit<Outgoing, "body"> & { body: string | null };
type WireReply =
  | { i: number; status: number; headers: [string, string][]; body: string; truncated: boolean }
  | { i: number; failed: string; timedOut: boolean };

interface Waiting {
  call: Outgoing;
  resolve: (reply: Reply) => void;
}

/**
 * The worker's side, for one batch of attempts (one consumer batch, or one Runner's share of it). A request leaves
 * once `expected` calls have come (the attempts of the batch), or RELAY_BATCH calls, or about RELAY_BATCH_BYTES of
 * bodies; otherwise at the next turn of the event loop. The count matters: under load, workerd runs a timer only once
 * it has nothing else to do, so a 0 ms timer can fire hundreds of milliseconds late.
 */
export class RelayBatch implements Sender {
  private waiting: Waiting[] = [];
  private bytes = 0;
  private sent = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly relay: Fetcher,
    private readonly secret: string,
    private readonly expected = 0,
  ) {}

  send(call: Outgoing): Promise<Reply> {
    return new Promise((resolve) => {
      this.waiting.push({ call, resolve });
      this.sent += 1;
      this.bytes += call.body?.length ?? 0;
      if (this.waiting.length >= RELAY_BATCH || this.bytes >= RELAY_BATCH_BYTES || this.sent === this.expected) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), 0);
    });
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.bytes = 0;
    const batch = this.waiting.splice(0);
    if (batch.length) void this.ship(batch);
  }

  private async ship(batch: Waiting[]): Promise<void> {
    const answered = new Array<boolean>(batch.length).fill(false);
    // A timer of its own, cleared at the end: AbortSignal.timeout's would stay pending for the whole time limit (14
    // minutes by default), one more for every relay request.
    const controller = new AbortController();
    let limit: ReturnType<typeof setTimeout> | null = null;
    try {
      const body = batch
        .map(({ call }) => `${JSON.stringify({ ...call, body: call.body === null ? null : bytesToBase64(call.body) } satisfies WireOutgoing)}\n`)
        .join("");
      const longest = Math.max(...batch.map(({ call }) => call.timeoutMs));
      limit = setTimeout(() => controller.abort(), longest + RELAY_GRACE_MS);
      const res = await this.relay.fetch("http://relay/", {
        method: "POST",
        headers: { [RELAY_SECRET_HEADER]: this.secret, "content-type": "application/x-ndjson" },
        body,
        signal: controller.signal,
      });
      if (res.status !== 200 || !res.body) throw new Error(`the relay answered ${res.status}: ${await res.text()}`);
      // All the answers of a chunk are handed on together (the relay writes those of one turn as one chunk).
      for await (const chunk of lines(res.body)) {
        for (const line of chunk) {
          const wire = JSON.parse(line) as WireReply;
          const waiting = batch[wire.i];
          if (!waiting || answered[wire.i]) continue;
          answered[wire.i] = true;
          waiting.resolve(
            "failed" in wire
              ? { failed: wire.failed, timedOut: wire.timedOut }
              : { status: wire.status, headers: pairsToMap(wire.headers), body: base64ToBytes(wire.body), truncated: wire.truncated },
          );
        }
      }
    } catch (err) {
      console.error(`the attempt relay failed; making the ${answered.filter((a) => !a).length} call(s) it did not answer directly`, err);
    } finally {
      clearTimeout(limit);
    }
    // Not answered (a relay that stopped, or a line it never sent): made from here. The relay may have made some of
    // them already; delivery is at least once.
    await Promise.all(batch.map(async (w, i) => (answered[i] ? undefined : w.resolve(await send(w.call)))));
  }
}

/** The complete lines of a UTF-8 stream, those of each chunk read together. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string[]> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of stream) {
    rest += decoder.decode(chunk, { stream: true });
    const cut = rest.lastIndexOf("\n");
    if (cut < 0) continue;
    const complete = rest.slice(0, cut).split("\n").filter((line) => line !== "");
    rest = rest.slice(cut + 1);
    if (complete.length) yield complete;
  }
  rest += decoder.decode();
  if (rest !== "") yield [rest];
}

/**
 * Batches of fewer attempts make their calls themselves. The relay saves the worker's thread the cost of every call
 * but one, and adds a hop: 2 to 4 ms on the test machine. Under light load a batch holds one attempt, and a message's
 * latency matters more than CPU the thread has to spare.
 */
export const RELAY_MIN_BATCH = 4;

/** Whether a batch of `count` attempts goes through the relay: this worker has one (`npm start`) and the batch is large enough. */
export function usesRelay(env: Env, count: number): env is Env & { RELAY: Fetcher; RELAY_SECRET: string } {
  return Boolean(env.RELAY && env.RELAY_SECRET) && count >= RELAY_MIN_BATCH;
}

/** The relay for one batch of `expected` attempts, when `usesRelay` says that batch takes it. */
export function relayFor(env: Env, expected: number): RelayBatch | undefined {
  return usesRelay(env, expected) ? new RelayBatch(env.RELAY, env.RELAY_SECRET, expected) : undefined;
}
