/**
 * The shard's writer: publishes and attempt outcomes of one isolate share one group commit per D1 database, so under
 * load they share D1 batches too. Each D1 call costs the local runtime about 0.8 ms of CPU whatever it carries
 * (`bench/d1-floor.mjs`): with a line each, a publish and its delivery's outcome paid for two calls' worth of
 * groups; with one line, for one (docs/architecture.md, steps 2 and 8).
 *
 * A kind of write (`WriteKind`) says what statements its items make, reads back what applied, and names what follows
 * the commit (the publishes' hand-off). A group's batch holds each kind's statements together, in the order the kinds
 * joined. Every statement of every kind succeeds on its own terms (fresh ids, INSERT OR IGNORE, UPDATE by id), so
 * a batch fails only when something cannot be written at all (a D1 limit). If a batch of two kinds fails, each kind
 * is committed again on its own, as if the other had never joined: one kind's failure never fails the other.
 */
import { COMMIT_GAP_MS, GroupCommit, type ItemSize, type Keep } from "./group-commit";

export interface WriteKind<T> {
  /** The statements of these items (all of this kind, in line order), and how to read back what they did. */
  build(items: T[]): { statements: D1PreparedStatement[]; applied?: (results: D1Result[]) => void };
  /** What an item counts for against the group's limits. */
  size(item: T): ItemSize;
  /** Work that follows the commit of these items (see GroupCommit's `after`). */
  after?(items: T[], keep: Keep): Promise<void>;
}

interface Write {
  kind: WriteKind<unknown>;
  item: unknown;
  /** Set when this write's kind failed on its own after a shared batch of several kinds failed. */
  failed?: { error: unknown };
}

/**
 * The limits of one shard's line. One commit at a time, so that publishes and outcomes arriving meanwhile go
 * together in the next; spaced under load (COMMIT_GAP_MS). A group takes at most 512 units (a publish counts its
 * messages, an outcome one; each had a line of its own with 256 and 64 before they shared one), 1 MiB and about 256
 * statements: a plain publish adds none of its own (its rows join one multi-row INSERT), nor does a delivery (a row
 * of a shared transition), while a failed attempt with a DLQ entry and callbacks adds three or four.
 */
const LIMITS = { leaders: 1, units: 512, bytes: 1 << 20, statements: 256, stuckMs: 5_000, spacing: { gapMs: COMMIT_GAP_MS, loadUnits: 2 } };

/** The group commit of each D1 database (shard) in this isolate, and the line apart (see `JoinOptions.apart`). */
const writers = new WeakMap<D1Database, GroupCommit<Write>>();
const apartWriters = new WeakMap<D1Database, GroupCommit<Write>>();

function writerOf(db: D1Database, apart: boolean): GroupCommit<Write> {
  const map = apart ? apartWriters : writers;
  let g = map.get(db);
  if (!g) {
    g = new GroupCommit<Write>((writes) => commitWrites(db, writes), (w) => w.kind.size(w.item), LIMITS, afterWrites);
    map.set(db, g);
  }
  return g;
}

export interface JoinOptions {
  /** The caller's waitUntil: keeps the shared commit alive if the caller's client goes away while it is in line. */
  waitUntil?: (p: Promise<unknown>) => void;
  /**
   * Join the line apart, which only such callers share. A member's code after its commit may run in the context of
   * the leader that answered it. For a queue handler that then acknowledges its messages, a leader in a Durable
   * Object's context breaks that: in the Workers test pool, whose tests run in a Durable Object, such acks failed
   * with "Cannot perform I/O on behalf of a different Durable Object". So the consumer's own outcomes (attempts made
   * in the queue handler, as on a deployment) keep a line of their own, as they had before publishes and outcomes
   * shared one; the Runners' outcomes (`npm start`, `npm run dev`) and publishes share the other.
   */
  apart?: boolean;
}

/**
 * Commits `item` with whatever else is written to `db` at the same moment; resolves once it is committed and its
 * kind's `after` is done, or rejects with the error its batch failed with.
 */
export async function joinWrite<T>(db: D1Database, kind: WriteKind<T>, item: T, opts: JoinOptions = {}): Promise<void> {
  const write: Write = { kind: kind as WriteKind<unknown>, item };
  await writerOf(db, opts.apart ?? false).join(write, opts.waitUntil);
  if (write.failed) throw write.failed.error;
}

/** The writes of a group by kind, kinds in the order they first joined. */
function byKind(writes: Write[]): [WriteKind<unknown>, Write[]][] {
  const kinds = new Map<WriteKind<unknown>, Write[]>();
  for (const w of writes) (kinds.get(w.kind) ?? kinds.set(w.kind, []).get(w.kind)!).push(w);
  return [...kinds];
}

async function commitWrites(db: D1Database, writes: Write[]): Promise<void> {
  const parts = byKind(writes).map(([kind, ws]) => ({ ws, ...kind.build(ws.map((w) => w.item)) }));
  try {
    const results = await db.batch(parts.flatMap((p) => p.statements));
    let at = 0;
    for (const p of parts) {
      p.applied?.(results.slice(at, at + p.statements.length));
      at += p.statements.length;
    }
  } catch (err) {
    // One kind alone: its members get the error, as they would have with a line of their own.
    if (parts.length === 1) throw err;
    // A batch is a transaction: nothing of the failed one was written. Each kind again on its own.
    await Promise.all(
      parts.map(async (p) => {
        try {
          const results = await db.batch(p.statements);
          p.applied?.(results);
        } catch (error) {
          for (const w of p.ws) w.failed = { error };
        }
      }),
    );
  }
}

/** Each kind's `after` for its writes that were committed. */
async function afterWrites(writes: Write[], keep: Keep): Promise<void> {
  await Promise.all(
    byKind(writes.filter((w) => !w.failed)).map(([kind, ws]) => kind.after?.(ws.map((w) => w.item), keep)),
  );
}
