#!/usr/bin/env node
// `npm run admin -- <command>`: manage tenants of a deployed Boomerang through its admin API.
//
//   BOOMERANG_URL=https://boomerang.example.workers.dev ADMIN_SECRET=... npm run admin -- create-tenant acme
//   BOOMERANG_URL=... ADMIN_SECRET=... npm run admin -- add-token <tenantId> [--read-only]
//
// The admin API is enabled only when the worker has the ADMIN_SECRET secret (`wrangler secret put ADMIN_SECRET`).
const [command, ...rest] = process.argv.slice(2);
const base = (process.env.BOOMERANG_URL ?? "").replace(/\/$/, "");
const secret = process.env.ADMIN_SECRET ?? "";

function usage(message) {
  if (message) console.error(`error: ${message}`);
  console.error("usage: BOOMERANG_URL=... ADMIN_SECRET=... npm run admin -- create-tenant <name> | add-token <tenantId> [--read-only]");
  process.exit(2);
}

if (!base) usage("set BOOMERANG_URL to your worker's URL");
if (!secret) usage("set ADMIN_SECRET to the secret you gave the worker");

async function call(path, body) {
  const res = await fetch(`${base}/admin${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) {
    console.error(`the server answered ${res.status}: ${text}`);
    process.exit(1);
  }
  return JSON.parse(text);
}

if (command === "create-tenant") {
  const name = rest[0] ?? "tenant";
  const t = await call("/tenants", { name });
  console.log(`tenant ${t.tenantId} created. Keep these; the tokens are shown only once:

QSTASH_URL=${base}
QSTASH_TOKEN=${t.token}
QSTASH_CURRENT_SIGNING_KEY=${t.currentSigningKey}
QSTASH_NEXT_SIGNING_KEY=${t.nextSigningKey}
# read-only token (GET endpoints only): ${t.readOnlyToken}`);
} else if (command === "add-token") {
  if (!rest[0]) usage("add-token needs a tenant id");
  const r = await call(`/tenants/${encodeURIComponent(rest[0])}/tokens`, { readOnly: rest.includes("--read-only") });
  console.log(`${r.readOnly ? "read-only " : ""}token: ${r.token}`);
} else {
  usage(command ? `unknown command "${command}"` : "no command given");
}
