import { it } from "vitest";
import { api, freshTenant } from "./helpers";
it("probe", async () => {
  const t = await freshTenant();
  for (const path of ["/v2/dlq?label=", "/v2/logs?label=", "/v2/dlq?dlqIds=", "/v2/logs?messageId="]) {
    for (const n of [90, 95, 97, 98, 99, 100, 101]) {
      const many = Array.from({ length: n }, (_, i) => `v${i}`).join(",");
      const res = await api(path + many, { token: t.token });
      console.log("PROBE", path, n, res.status);
    }
  }
  for (const n of [95, 98, 99, 100]) {
    const many = Array.from({ length: n }, (_, i) => `v${i}`).join(",");
    const res = await api("/v2/messages?messageId=" + many, { method: "DELETE", token: t.token });
    console.log("PROBE del", n, res.status);
  }
});
