/**
 * Cancelling messages that wait in (or hold a slot of) a queue or flow-control gate frees them there. A cancelled
 * callback may free its source's queue slot too: that slot waits for the source and all its callbacks to finish.
 */
import type { Env } from "../env";
import { gateName, gateStub } from "../objects/gate";

export async function releaseCancelled(env: Env, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  const { results } = await env.DB.prepare(
    `SELECT id, tenant_id, queue_name, json_extract(flow_control, '$.key') AS flow_key FROM messages
     WHERE id IN (SELECT value FROM json_each(?1)) AND state = 'CANCELED' AND (queue_name IS NOT NULL OR flow_control IS NOT NULL)`,
  )
    .bind(JSON.stringify(ids))
    .all<{ id: string; tenant_id: string; queue_name: string | null; flow_key: string | null }>();
  const byGate = new Map<string, string[]>();
  const add = (name: string, id: string) => (byGate.get(name) ?? byGate.set(name, []).get(name)!).push(id);
  for (const r of results) {
    if (r.queue_name) add(gateName("queue", r.tenant_id, r.queue_name), r.id);
    if (r.flow_key) add(gateName("flow", r.tenant_id, r.flow_key), r.id);
  }
  // Queued sources of cancelled callbacks that have finished and have no callback still open.
  const { results: sources } = await env.DB.prepare(
    `SELECT p.id, p.tenant_id, p.queue_name FROM messages p
     WHERE p.id IN (SELECT c.parent_id FROM messages c WHERE c.id IN (SELECT value FROM json_each(?1))
                      AND c.state = 'CANCELED' AND c.parent_id IS NOT NULL)
       AND p.queue_name IS NOT NULL AND p.finished_at IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.parent_id = p.id AND o.finished_at IS NULL)`,
  )
    .bind(JSON.stringify(ids))
    .all<{ id: string; tenant_id: string; queue_name: string }>();
  for (const p of sources) add(gateName("queue", p.tenant_id, p.queue_name), p.id);
  await Promise.all([...byGate].map(([name, list]) => gateStub(env, name).release(list)));
}
