/** Retention: the statements that delete expired rows, one bounded step at a time (the sweeper drives them). */

/** Deletes expired dedup rows (at most `limit`). */
export function pruneDedup(db: D1Database, now: number, limit: number): D1PreparedStatement {
  return db.prepare(`DELETE FROM dedup WHERE rowid IN (SELECT rowid FROM dedup WHERE expires_at < ?1 LIMIT ${limit})`).bind(now);
}

/**
 * One step: at most `step` log entries older than `eventsBefore`, DLQ entries older than `dlqBefore`, and finished
 * messages older than `messagesBefore` that no DLQ entry refers to. Each statement returns the R2 keys (`ref`) of
 * the rows it deleted.
 */
export function pruneStep(
  db: D1Database,
  step: number,
  cutoffs: { eventsBefore: number; dlqBefore: number; messagesBefore: number },
): D1PreparedStatement[] {
  return [
    // Events are inserted in time order, so the oldest by seq are the expired ones: a bounded walk, no time index.
    db
      .prepare(
        `DELETE FROM events WHERE seq IN (SELECT seq FROM (SELECT seq, time FROM events ORDER BY seq LIMIT ${step}) WHERE time < ?1)
         RETURNING response_body_ref AS ref`,
      )
      .bind(cutoffs.eventsBefore),
    db
      .prepare(`DELETE FROM dlq WHERE seq IN (SELECT seq FROM dlq WHERE created_at < ?1 LIMIT ${step}) RETURNING response_body_ref AS ref`)
      .bind(cutoffs.dlqBefore),
    db
      .prepare(
        `DELETE FROM messages WHERE id IN (SELECT id FROM messages m WHERE finished_at IS NOT NULL AND finished_at < ?1
           AND NOT EXISTS (SELECT 1 FROM dlq d WHERE d.message_id = m.id) LIMIT ${step}) RETURNING body_ref AS ref`,
      )
      .bind(cutoffs.messagesBefore),
  ];
}
