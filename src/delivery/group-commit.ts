/**
 * Group commit: concurrent writers in one isolate share one D1 batch (and what follows it).
 *
 * A writer joins a line. When fewer than `limits.leaders` commits are running, it leads at once: it takes
 * itself and the members at the head of the line, commits them all together, answers each member, and
 * passes the lead to whoever waits next. A lone writer commits immediately, and under load the line fills while
 * a commit is in flight, so the next commit carries it all. With `spacing`, a commit that follows one of several
 * units waits until the gap since that one's start has passed, so that more join it.
 *
 * Every statement in a group must succeed on its own terms (fresh ids, INSERT OR IGNORE, UPDATE by id),
 * since one failing statement rolls back the whole batch; writes that can fail (dedup) commit alone.
 * The I/O runs in the leader's request; each member keeps its own request alive (waitUntil) while it may
 * be asked to lead. A member stuck in line (a leader that never came back) leads by itself after a while.
 */

/**
 * Under load, a commit of publishes or outcomes starts at least this long after the one before it started
 * (`GroupLimits.spacing`). Back to back, commits of publishes on a busy thread carried about 4 each; spaced by 10 ms,
 * about 12, and the thread spends less per message: `node bench/ab.mjs` (closed loop, 32 connections, npm start)
 * gave 1.14× the accepted publishes at 0.87× the CPU per message against back-to-back commits; 5 ms did no better,
 * 20 ms worse (bench/README.md, 2026-12-04). A lone writer (the last commit carried one unit) never waits.
 */
export const COMMIT_GAP_MS = 10;

export interface GroupLimits {
  /** At most this many commits run at once (each leads one group). */
  leaders: number;
  /** A group holds at most this many units (messages)… */
  units: number;
  /** …and this many bytes (one large item commits alone). */
  bytes: number;
  /** A member still in line after this long stops waiting for a leader and leads itself. */
  stuckMs: number;
  /**
   * Spacing under load: when the last commit carried at least `loadUnits` units, the next one starts no sooner
   * than `gapMs` after it started, and takes everyone who joined meanwhile. Without it, commits follow each other
   * back to back.
   */
  spacing?: { gapMs: number; loadUnits: number };
}

type Signal = "lead" | "done";

interface Member<T> {
  item: T;
  units: number;
  bytes: number;
  signal: (s: Signal) => void;
  fail: (err: unknown) => void;
}

export class GroupCommit<T> {
  private readonly line: Member<T>[] = [];
  private leaders = 0;
  private lastStart = Number.NEGATIVE_INFINITY;
  private lastUnits = 0;

  constructor(
    /** Commits the items of one group; its error rejects every member of the group. */
    private readonly commit: (items: T[]) => Promise<void>,
    /** How many units and bytes an item counts for. */
    private readonly size: (item: T) => { units: number; bytes: number },
    readonly limits: GroupLimits,
    /**
     * Work that follows a group's commit (e.g. the queue hand-off). It runs after the lead has passed on,
     * so the next group's commit overlaps with it; members are answered when it is done.
     */
    private readonly after?: (items: T[]) => Promise<void>,
  ) {}

  /**
   * Commits `item` together with other items joining at the same moment; resolves once its group is
   * committed, or rejects with the group's error.
   */
  async join(item: T, waitUntil?: (p: Promise<unknown>) => void): Promise<void> {
    const { units, bytes } = this.size(item);
    if (bytes >= this.limits.bytes || units >= this.limits.units) {
      await this.commit([item]);
      await this.after?.([item]);
      return;
    }
    let signal!: (s: Signal) => void;
    let fail!: (err: unknown) => void;
    const turn = new Promise<Signal>((resolve, reject) => {
      signal = resolve;
      fail = reject;
    });
    const me: Member<T> = { item, units, bytes, signal, fail };
    const work = this.take(me, turn);
    waitUntil?.(work.catch(() => undefined));
    return work;
  }

  private async take(me: Member<T>, turn: Promise<Signal>): Promise<void> {
    if (this.leaders < this.limits.leaders) {
      this.leaders += 1;
      return this.lead(me);
    }
    this.line.push(me);
    let timer: ReturnType<typeof setTimeout> | null = null;
    const stuck = new Promise<"stuck">((resolve) => {
      timer = setTimeout(() => resolve("stuck"), this.limits.stuckMs);
    });
    let first: Signal | "stuck";
    try {
      first = await Promise.race([turn, stuck]);
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
    if (first === "stuck") {
      const at = this.line.indexOf(me);
      if (at >= 0) {
        // No leader came for this long (one may have died with its request): take over its slot.
        this.line.splice(at, 1);
        first = "lead";
      } else {
        // Already taken into a group (its leader answers) or just handed the lead.
        first = await turn;
      }
    }
    if (first === "lead") await this.lead(me);
  }

  /** `first` (already out of the line), then the head of the line while the limits allow; notes the group's units. */
  private group(first: Member<T>): Member<T>[] {
    const group = [first];
    let units = first.units;
    let bytes = first.bytes;
    while (this.line.length > 0) {
      const next = this.line[0];
      if (units + next.units > this.limits.units || bytes + next.bytes > this.limits.bytes) break;
      this.line.shift();
      group.push(next);
      units += next.units;
      bytes += next.bytes;
    }
    this.lastUnits = units;
    return group;
  }

  /** Hands this leader's slot to the first member in line (taking it out of the line), or frees the slot. */
  private passLead(): void {
    const next = this.line.shift();
    if (next) next.signal("lead");
    else this.leaders = Math.max(0, this.leaders - 1);
  }

  private async lead(me: Member<T>): Promise<void> {
    const spacing = this.limits.spacing;
    if (spacing && this.lastUnits >= spacing.loadUnits) {
      const wait = this.lastStart + spacing.gapMs - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    const group = this.group(me);
    this.lastStart = Date.now();
    const items = group.map((m) => m.item);
    let passed = false;
    try {
      await this.commit(items);
      passed = true;
      this.passLead();
      await this.after?.(items);
      for (const m of group) if (m !== me) m.signal("done");
    } catch (err) {
      for (const m of group) if (m !== me) m.fail(err);
      throw err;
    } finally {
      if (!passed) this.passLead();
    }
  }
}
