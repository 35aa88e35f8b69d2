/**
 * Cancelling messages that wait in (or hold a slot of) a queue or flow-control gate frees them there. A cancelled
 * callback may free its source's queue slot too: that slot waits for the source and all its callbacks to finish.
 */
import { cancelledGateHolders } from "../db/messages";
import type { Env } from "../env";
import { gateName, gateStub } from "../objects/gate";

export async function releaseCancelled(env: Env, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  const { held, sources } = await cancelledGateHolders(env.DB, ids);
  const byGate = new Map<string, string[]>();
  const add = (name: string, id: string) => (byGate.get(name) ?? byGate.set(name, []).get(name)!).push(id);
  for (const r of held) {
    if (r.queue_name) add(gateName("queue", r.tenant_id, r.queue_name), r.id);
    if (r.flow_key) add(gateName("flow", r.tenant_id, r.flow_key), r.id);
  }
  for (const p of sources) add(gateName("queue", p.tenant_id, p.queue_name), p.id);
  await Promise.all([...byGate].map(([name, list]) => gateStub(env, name).release(list)));
}
