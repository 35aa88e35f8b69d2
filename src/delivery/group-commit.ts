/**
 * Group commit: concurrent publishes in one isolate share one D1 batch and one queue hand-off.
 *
 * A publish joins a line. When fewer than `groupLimits.leaders` commits are running, it leads at once: it
 * takes itself and the members at the head of the line, writes all their statements in one D1 batch, hands
 * all their messages on, answers each member, and passes the lead to whoever waits next. Nobody waits for
 * a timer: a lone publish commits immediately, and under load the line fills while a commit is in flight,
 * so the next commit carries it all.
 *
 * Every statement in a group must succeed on its own terms (fresh ids, INSERT OR IGNORE), since one failing
 * statement rolls back the whole batch; publishes whose statements can fail (dedup) commit alone.
 * The I/O runs in the leader's request; each member keeps its own request alive (waitUntil) while it may be
 * asked to lead. A member stuck in line (a leader that never came back) commits by itself after a while.
 */
import type { StoredMessage } from "../core/types";
import type { Env } from "../env";

export const groupLimits = {
  /** At most this many commits run at once (each leads one group). */
  leaders: 2,
  /** A group holds at most this many messages… */
  messages: 64,
  /** …and this many body bytes (one large message commits alone). */
  bytes: 1 << 20,
  /** A member still in line after this long stops waiting for a leader and leads itself. */
  stuckMs: 5_000,
};

export type Commit = (env: Env, messages: StoredMessage[], statements: D1PreparedStatement[]) => Promise<void>;

type Signal = "lead" | "done";

interface Member {
  messages: StoredMessage[];
  statements: D1PreparedStatement[];
  bytes: number;
  signal: (s: Signal) => void;
  fail: (err: unknown) => void;
}

const line: Member[] = [];
let leaders = 0;

function bodyBytes(messages: StoredMessage[]): number {
  let n = 0;
  for (const m of messages) n += m.body?.byteLength ?? 0;
  return n;
}

/** The members of the next group: `first` (already out of the line), then the head of the line while the limits allow. */
function takeGroup(first: Member): Member[] {
  const group = [first];
  let count = first.messages.length;
  let bytes = first.bytes;
  while (line.length > 0) {
    const next = line[0];
    if (count + next.messages.length > groupLimits.messages || bytes + next.bytes > groupLimits.bytes) break;
    line.shift();
    group.push(next);
    count += next.messages.length;
    bytes += next.bytes;
  }
  return group;
}

/** Hands this leader's slot to the first member in line (taking it out of the line), or frees the slot. */
function passLead(): void {
  const next = line.shift();
  if (next) next.signal("lead");
  else leaders = Math.max(0, leaders - 1);
}

async function lead(env: Env, me: Member, commit: Commit): Promise<void> {
  const group = takeGroup(me);
  try {
    await commit(
      env,
      group.flatMap((m) => m.messages),
      group.flatMap((m) => m.statements),
    );
    for (const m of group) if (m !== me) m.signal("done");
  } catch (err) {
    for (const m of group) if (m !== me) m.fail(err);
    throw err;
  } finally {
    passLead();
  }
}

/**
 * Commits `messages` and `statements` together with other publishes running at the same moment, and
 * resolves once they are stored and handed on (or rejects with the commit's error).
 */
export async function commitInGroup(
  env: Env,
  messages: StoredMessage[],
  statements: D1PreparedStatement[],
  commit: Commit,
  waitUntil?: (p: Promise<unknown>) => void,
): Promise<void> {
  const bytes = bodyBytes(messages);
  if (bytes >= groupLimits.bytes || messages.length >= groupLimits.messages) return commit(env, messages, statements);
  let signal!: (s: Signal) => void;
  let fail!: (err: unknown) => void;
  const turn = new Promise<Signal>((resolve, reject) => {
    signal = resolve;
    fail = reject;
  });
  const me: Member = { messages, statements, bytes, signal, fail };
  const work = (async () => {
    if (leaders < groupLimits.leaders) {
      leaders += 1;
      return lead(env, me, commit);
    }
    line.push(me);
    let timer: ReturnType<typeof setTimeout> | null = null;
    const stuck = new Promise<"stuck">((resolve) => {
      timer = setTimeout(() => resolve("stuck"), groupLimits.stuckMs);
    });
    let first: Signal | "stuck";
    try {
      first = await Promise.race([turn, stuck]);
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
    if (first === "stuck") {
      const at = line.indexOf(me);
      if (at >= 0) {
        // No leader came for this long (one may have died with its request): take over its slot.
        line.splice(at, 1);
        first = "lead";
      } else {
        // Already taken into a group (its leader answers) or just handed the lead.
        first = await turn;
      }
    }
    if (first === "lead") await lead(env, me, commit);
  })();
  waitUntil?.(work.catch(() => undefined));
  return work;
}
