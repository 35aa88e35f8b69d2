/**
 * Lease guards: every write that records the outcome of an attempt is conditioned on the lease the attempt was
 * made under and on the retries counted when it began. If that lease was lost (it ran out and another attempt
 * claimed the message, or the message was finished meanwhile), or another attempt recorded its outcome first, the
 * outcome writes nothing, so one attempt never records two outcomes and a message never gets a second DLQ entry or
 * failure callback. An attempt whose claim wrote nothing (src/delivery/consumer.ts) holds the lease it found: none,
 * or a run-out one.
 */

/** The message an outcome belongs to, the lease its attempt held and the retries counted when it began. */
export interface LeaseGuard {
  id: string;
  leaseUntil: number | null;
  retried: number;
}

/**
 * The tail of an INSERT of `n` bound values (`?1`…`?n`): `VALUES (…)` without a guard, else a `SELECT` of the
 * same values that yields a row only while the guarded message is unfinished and holds exactly that lease.
 * Returns the SQL and the parameters to bind after the n values.
 */
export function guardedValues(n: number, guard?: LeaseGuard): { sql: string; params: unknown[] } {
  const values = Array.from({ length: n }, (_, i) => `?${i + 1}`).join(", ");
  if (!guard) return { sql: `VALUES (${values})`, params: [] };
  return {
    sql: `SELECT ${values} WHERE ${holds(n + 1, n + 2, n + 3)}`,
    params: [guard.id, guard.leaseUntil, guard.retried],
  };
}

/**
 * SQL that is true while message `?idParam` is unfinished, its lease is `?leaseParam` (NULL matches NULL) and its
 * retries are `?retriedParam`.
 */
export function holds(idParam: number, leaseParam: number, retriedParam: number): string {
  return `EXISTS (SELECT 1 FROM messages WHERE id = ?${idParam} AND lease_until IS ?${leaseParam} AND retried = ?${retriedParam} AND finished_at IS NULL)`;
}
