/**
 * The publishes' sends to the deliveries queue, spaced under load.
 *
 * A hand-off that finds no send running sends its ids at once when the last send carried fewer than `loadIds` ids
 * (the rate is low: a publish at 50/s waits for nothing) or ended more than `gapMs` ago. Otherwise its ids wait,
 * and the next send carries every id waiting by then, in packs (src/delivery/packs.ts). Under load the queue then gets one send per gap instead of one per group commit: fewer,
 * fuller queue messages (Queues bill per 64 KB message), and on `npm start` a local queue broker that keeps up.
 * Miniflare's broker puts every message it is sent on a timer of its own and dispatches batches on another; under a
 * send every few milliseconds its dispatch timer fired 0.2–0.5 s late (docs/architecture.md, "Serving modes").
 *
 * Nothing crosses requests but plain promises: a waiting hand-off sleeps on its own timer, in its own request, and
 * whichever hand-off wakes first with the gap passed sends for all. A send still running after `stuckMs` is left to
 * itself: the hand-offs waiting for it send without it (the ids it carries reach the queue when it ends, or the
 * sweeper re-sends them if it fails).
 */

interface Waiting {
  ids: readonly string[];
  /** Set once a send has carried these ids (with its error, if it failed). */
  outcome?: { error: unknown } | { error?: undefined };
}

export class QueueFeed {
  private waiting: Waiting[] = [];
  private running: { done: Promise<void> } | null = null;
  private lastEnd = Number.NEGATIVE_INFINITY;
  private lastIds = 0;
  /** The number of sends so far (for tests and benchmarks). */
  sends = 0;

  constructor(
    /** Under load, the least time from the end of one send to the start of the next. */
    readonly gapMs: number,
    /** A send of this many ids or more means load: the next send waits for the gap. */
    readonly loadIds: number,
    /** A send running this long no longer holds the others back. */
    readonly stuckMs = 5_000,
  ) {}

  /** Resolves once `ids` are in the queue (rejects with the send's error); `send` is the caller's own. */
  async push(ids: readonly string[], send: (ids: string[]) => Promise<void>): Promise<void> {
    const me: Waiting = { ids };
    this.waiting.push(me);
    while (me.outcome === undefined) {
      const running = this.running;
      if (running) {
        if ((await within(running.done, this.stuckMs)) === "late" && this.running === running) {
          console.error(`a send to the deliveries queue has run for ${this.stuckMs} ms; the next hand-offs go without it`);
          this.running = null;
        }
        continue;
      }
      const wait = this.lastIds < this.loadIds ? 0 : this.lastEnd + this.gapMs - Date.now();
      if (wait > 0) {
        await new Promise((resolve) => setTimeout(resolve, wait));
        continue;
      }
      const mine = { done: Promise.resolve() };
      this.running = mine;
      mine.done = this.sendWaiting(send, mine);
      await mine.done;
    }
    if (me.outcome.error !== undefined) throw me.outcome.error;
  }

  private async sendWaiting(send: (ids: string[]) => Promise<void>, mine: { done: Promise<void> }): Promise<void> {
    const batch = this.waiting;
    this.waiting = [];
    const ids = batch.flatMap((w) => w.ids);
    this.sends += 1;
    this.lastIds = ids.length;
    try {
      await send(ids);
      for (const w of batch) w.outcome = {};
    } catch (error) {
      for (const w of batch) w.outcome = { error: error ?? new Error("queue send failed") };
    } finally {
      this.lastEnd = Date.now();
      if (this.running === mine) this.running = null;
    }
  }
}

/** Whether `p` settles within `ms` ("late" if not); never rejects. */
async function within(p: Promise<unknown>, ms: number): Promise<"settled" | "late"> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), ms);
  });
  try {
    return await Promise.race([p.then(() => "settled" as const, () => "settled" as const), late]);
  } finally {
    if (timer !== null) clearTimeout(timer);
  }
}

/** Between two sends of publish hand-offs under load (see above): at most 40 sends a second per isolate. */
export const FEED_GAP_MS = 25;
/** Load, for the feed: a send of 10 ids or more (a group commit of 10 publishes, or a batch). */
export const FEED_LOAD_IDS = 10;

const feeds = new WeakMap<object, QueueFeed>();

/** The feed of one queue binding in this isolate. */
export function feedOf(queue: object): QueueFeed {
  let f = feeds.get(queue);
  if (!f) {
    f = new QueueFeed(FEED_GAP_MS, FEED_LOAD_IDS);
    feeds.set(queue, f);
  }
  return f;
}
