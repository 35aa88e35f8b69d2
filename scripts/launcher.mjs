// What the launchers share (`npm run dev`: scripts/dev.mjs, `npm start`: scripts/start.mjs, `npm test`:
// scripts/test.mjs): reading options, the offline environment for wrangler, and the lines printed once ready.

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
