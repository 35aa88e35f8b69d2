#!/usr/bin/env node
// `npm run reset`: deletes the local state (D1, queues, Durable Objects) so the next `npm run dev` starts empty,
// with the dev tenants' fixed signing keys restored.
import { rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dir = path.resolve(root, process.env.BOOMERANG_STATE || ".wrangler/state");
rmSync(dir, { recursive: true, force: true });
console.log(`[boomerang] removed ${path.relative(root, dir)}; the next \`npm run dev\` starts from an empty state.`);
