/**
 * End-to-end: the official Python SDK (`qstash` 3.4.0) against a real `npm run dev` server. Each case of
 * test/python/sdk_wire.py runs in its own Python process; a case passes when the script exits 0. These guard the
 * calls the Python SDK sends differently from the JS one (ids in JSON bodies, "cancel all" with no body), not the
 * features the JS suite already covers.
 *
 * The interpreter is BOOMERANG_PYTHON, else the virtual environment `.ci/run` makes (`.venv-py`), else `python3`.
 * When it cannot import `qstash` (the package registry was unreachable), every case is reported as skipped and the
 * reason is printed: a skip, never a pass.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Destination, startDestination } from "../support/destination";
import { USER1, USER2 } from "./helpers";
import { type DevServer, showServerOnFailure, startServer } from "./server";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const script = path.join(root, "test", "python", "sdk_wire.py");
const venvPython = path.join(root, ".venv-py", "bin", "python");
const python = process.env.BOOMERANG_PYTHON || (existsSync(venvPython) ? venvPython : "python3");

function sdkVersion(): string | null {
  const r = spawnSync(python, ["-c", "import qstash; print(qstash.__version__)"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

const version = sdkVersion();
if (!version) {
  console.warn(
    `[e2e] the Python SDK suite is skipped: ${python} cannot import qstash. ` +
      "Run `bash .ci/run` (it makes .venv-py and installs qstash==3.4.0 from PyPI), or point BOOMERANG_PYTHON at an " +
      "interpreter that has it.",
  );
}
const cases = version
  ? spawnSync(python, [script, "--list"], { encoding: "utf8" }).stdout.split("\n").filter(Boolean)
  : ["cancel_many", "cancel_all", "dlq_delete_many", "dlq_retry_many", "url_group_delete_missing",
      "flow_control_schedule", "flow_control_message"];

/** Runs one case of the script against the server; resolves with its exit status and everything it printed. */
function run(name: string): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [script, name], {
      env: {
        ...process.env,
        QSTASH_URL: server!.url,
        QSTASH_TOKEN: USER1.token,
        QSTASH_TOKEN_2: USER2.token,
        DEST_URL: dest.base,
      },
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 50_000);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}

let server: DevServer | undefined;
let dest: Destination;

describe.skipIf(!version)(`the Python SDK (qstash ${version ?? "missing"})`, () => {
  beforeAll(async () => {
    server = await startServer();
    dest = await startDestination();
  });
  afterAll(async () => {
    await server?.stop();
    await dest?.close();
  });
  showServerOnFailure(() => server);

  it("has the cases this suite expects", () => {
    expect(cases.length).toBeGreaterThanOrEqual(7);
  });

  for (const name of cases) {
    it(name, async () => {
      // Asynchronous: the destination server lives in this process and must answer while the case runs.
      const r = await run(name);
      expect(r.status, `${name} failed:\n${r.output}`).toBe(0);
      expect(r.output).toContain(`${name}: passed`);
    });
  }
});
