import { env } from "cloudflare:test";
import { it } from "vitest";
import { api, dest, freshTenant, publishOk } from "./helpers";
it("probe", async () => {
  const a = await freshTenant();
  const time = async (what: string, p: string, token = a.token) => { const s = Date.now(); const r = await api(p, { token }); await r.text(); console.log("PROBE", what, p.slice(0, 50), r.status, Date.now() - s); };
  await time("before", "/v2/keys");
  await publishOk(dest("pr/ok"), { token: a.token, headers: { "upstash-delay": "1h", "upstash-flow-control-key": "fck", "upstash-flow-control-value": "parallelism=1" } });
  for (let i = 0; i < 3; i++) await time("after fc publish", "/v2/keys");
  await time("fc", "/v2/flowControl/fck");
  const sch = await api(`/v2/schedules/${dest("pr/ok")}`, { method: "POST", token: a.token, headers: { "upstash-cron": "0 0 1 1 *", "upstash-schedule-id": "s1", "upstash-delay": "1h" } });
  console.log("PROBE sched", sch.status);
  for (let i = 0; i < 3; i++) await time("after schedule", "/v2/keys");
  await publishOk(dest("pr/status/500"), { token: a.token, headers: { "upstash-retries": "0" } });
  for (let i = 0; i < 3; i++) { await new Promise((r) => setTimeout(r, 500)); await time("after fail", "/v2/keys"); }
  for (let i = 0; i < 3; i++) { const s = Date.now(); await env.DB.prepare("SELECT count(*) AS n FROM events WHERE tenant_id = ?1").bind(a.tenantId).first(); console.log("PROBE db", Date.now() - s); }
});
