/** Retention: the statements that delete expired rows, one bounded step at a time (the sweeper drives them). */
import { RUN_REFS } from "./workflow-runs";

/** Deletes expired dedup rows (at most `limit`). */
export function pruneDedup(db: D1Database, now: number, limit: number): D1PreparedStatement {
  return db.prepare(`DELETE FROM dedup WHERE rowid IN (SELECT rowid FROM dedup WHERE expires_at < ?1 LIMIT ${limit})`).bind(now);
}

/**
 * The next `step` message ids after `after` and below `ceiling` (ids sort by creation time, so `ceiling` is the
 * first id made at the retention cutoff), each with whether it can go now: finished before `before`, and no DLQ
 * entry refers to it. Nothing indexes the finish time: this walk over ids is how pruning finds expired rows.
 */
export async function pruneWalk(
  db: D1Database,
  after: string,
  ceiling: string,
  before: number,
  step: number,
): Promise<{ id: string; expired: number }[]> {
  const { results } = await db
    .prepare(
      `SELECT m.id, (m.finished_at IS NOT NULL AND m.finished_at < ?3 AND NOT EXISTS (SELECT 1 FROM dlq d WHERE d.message_id = m.id)) AS expired
       FROM messages m WHERE m.id > ?1 AND m.id < ?2 ORDER BY m.id LIMIT ${step}`,
    )
    .bind(after, ceiling, before)
    .all<{ id: string; expired: number }>();
  return results;
}

/** The SQL expression of the R2 keys a message row refers to: its body and its log entries' response bodies. */
const ROW_REFS = `(SELECT json_group_array(l.value ->> '$.r') FROM json_each(log) l WHERE l.value ->> '$.r' IS NOT NULL)`;

/**
 * Deletes messages among `ids` that are still expired (finished before `before`, no DLQ entry), returning the R2
 * keys each referred to (`ref`, and `refs` as a JSON array). Their log marks go with them (a trigger).
 */
export function deleteExpired(db: D1Database, ids: string[], before: number): D1PreparedStatement {
  return db
    .prepare(
      `DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?1)) AND finished_at IS NOT NULL AND finished_at < ?2
         AND NOT EXISTS (SELECT 1 FROM dlq d WHERE d.message_id = messages.id)
       RETURNING body_ref AS ref, ${ROW_REFS} AS refs`,
    )
    .bind(JSON.stringify(ids), before);
}

/**
 * Deletes at most `step` workflow runs that ended before `before` (their history is in their row), returning the
 * R2 keys of their large history elements (`refs`, a JSON array).
 */
export function pruneRuns(db: D1Database, before: number, step: number): D1PreparedStatement {
  return db
    .prepare(
      `DELETE FROM workflow_runs WHERE (tenant_id, run_id) IN (SELECT tenant_id, run_id FROM workflow_runs INDEXED BY workflow_runs_done
         WHERE state <> 'RUN_STARTED' AND completed_at < ?1 LIMIT ${step})
       RETURNING ${RUN_REFS} AS refs`,
    )
    .bind(before);
}

/** Deletes at most `step` DLQ entries created before `before`, returning their R2 keys. */
export function pruneDlq(db: D1Database, before: number, step: number): D1PreparedStatement {
  return db
    .prepare(`DELETE FROM dlq WHERE seq IN (SELECT seq FROM dlq WHERE created_at < ?1 LIMIT ${step}) RETURNING response_body_ref AS ref`)
    .bind(before);
}

/**
 * Messages stored before message ids carried their creation time (migration 0011) are not in time order, so the
 * walk over ids cannot tell when it has passed them: `legacy_messages` lists them. They are few and only shrink.
 * One step deletes at most `step` expired ones, then forgets listed ids (and response-body keys) of messages that
 * are gone. The CROSS JOIN makes SQLite walk the short list and look each id up: with a plain JOIN it chose to scan
 * the whole messages table (600 ms on a million rows, every sweep; test/worker/query-plans.test.ts).
 */
export function pruneLegacy(db: D1Database, before: number, step: number): D1PreparedStatement[] {
  return [
    db
      .prepare(
        `DELETE FROM messages WHERE id IN (SELECT l.id FROM legacy_messages l CROSS JOIN messages m ON m.id = l.id
           WHERE m.finished_at IS NOT NULL AND m.finished_at < ?1 AND NOT EXISTS (SELECT 1 FROM dlq d WHERE d.message_id = m.id)
           LIMIT ${step})
         RETURNING body_ref AS ref, ${ROW_REFS} AS refs`,
      )
      .bind(before),
    db.prepare(
      `DELETE FROM legacy_messages WHERE id IN (SELECT l.id FROM legacy_messages l
         WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = l.id) LIMIT ${step})`,
    ),
    db.prepare(
      `DELETE FROM legacy_response_refs WHERE (ref, message_id) IN (SELECT l.ref, l.message_id FROM legacy_response_refs l
         WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = l.message_id) LIMIT ${step})`,
    ),
  ];
}
