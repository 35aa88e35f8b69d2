// What the launchers share (`npm run dev`: scripts/dev.mjs, `npm start`: scripts/start.mjs, `npm test`:
// scripts/test.mjs): reading and checking options, the offline environment for wrangler, and the lines printed once ready.

import { readFileSync } from "node:fs";

/** Nothing waits on the network: no update checks, telemetry or Request.cf fetches. */
export const OFFLINE_ENV = {
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_SEND_ERROR_REPORTS: "false",
  WRANGLER_HIDE_BANNER: "true",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  npm_config_update_notifier: "false",
};

/** The dev tenant's public credentials (those of the official QStash dev server). */
export const DEV_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=";
const DEV_KEYS = { current: "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r", next: "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs" };

/** `opt(name, envName, fallback)`: the value after `--name` in `args`, else the environment variable, else `fallback`. */
export function optionReader(args) {
  return (name, envName, fallback) => {
    const i = args.indexOf(`--${name}`);
    if (i >= 0 && args[i + 1]) return args[i + 1];
    return process.env[envName] || fallback;
  };
}

/**
 * Checks a launcher's arguments before anything starts. `--help` (or `-h`) prints `usage` (the options block of the
 * script's own header) and exits 0; an argument the launcher does not know ends it with status 2 and says which one
 * and what is known, where it used to be ignored without a word. `values` take the next argument; `flags` do not.
 */
export function checkArgs(args, { values, flags, usage }) {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(usage);
    process.exit(0);
  }
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const name = a.startsWith("--") ? a.slice(2) : null;
    if (name !== null && values.includes(name)) {
      if (args[i + 1] === undefined || args[i + 1].startsWith("--")) return usageError(`${a} needs a value`, usage);
      i += 1;
    } else if (name === null || !flags.includes(name)) {
      return usageError(`unknown argument "${a}"`, usage);
    }
  }
}

function usageError(what, usage) {
  console.error(`[boomerang] ${what}. What it takes:\n\n${usage}`);
  process.exit(2);
}

/** The options block of a launcher's header comment (from "Options" to the first line that is not a comment). */
export function usageOf(file, command) {
  const lines = readFileSync(file, "utf8").split("\n");
  const from = lines.findIndex((l) => /^\/\/ Options/.test(l));
  const block = [];
  for (let i = from; from >= 0 && i < lines.length && lines[i].startsWith("//"); i++) block.push(lines[i].replace(/^\/\/ ?/, ""));
  return `Usage: ${command} [options]\n\n${block.join("\n")}`;
}

/** True when `--debug` was given or BOOMERANG_DEBUG is 1 / true. */
export function debugWanted(args) {
  return args.includes("--debug") || ["1", "true"].includes(process.env.BOOMERANG_DEBUG ?? "");
}

/** The lines printed once the server answers: the `.env` of an app, and the console's address. */
export function readyBanner({ base, startedAt, mode }) {
  return `
[boomerang] ready in ${((Date.now() - startedAt) / 1000).toFixed(1)}s${mode ? ` (${mode})` : ""}. Put these in your app's .env (or set QSTASH_DEV=true):

QSTASH_URL=${base}
QSTASH_TOKEN=${DEV_TOKEN}
QSTASH_CURRENT_SIGNING_KEY=${DEV_KEYS.current}
QSTASH_NEXT_SIGNING_KEY=${DEV_KEYS.next}

[boomerang] web console: ${base}/console (sign in as a dev tenant in one click)
`;
}
