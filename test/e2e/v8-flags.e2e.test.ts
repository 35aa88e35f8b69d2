/**
 * V8 flags for the runtime under `npm start` (scripts/v8-flags.mjs): the launcher adds them to the binary config
 * Miniflare writes to workerd. Checked against the real workerd binary: a config serialized by Miniflare, with the
 * flags added, is one workerd reads, and V8 sees the flags (`--help` makes V8 print its flag list and workerd exit).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { serializeConfig } from "miniflare";
import { describe, expect, it } from "vitest";
import { freePort } from "./server";
import { DEFAULT_V8_FLAGS, parseV8Flags as parse, withV8Flags as addFlags } from "../../scripts/v8-flags.mjs";
const workerd = createRequire(import.meta.url)("workerd").default as string;
const root = path.resolve(__dirname, "..", "..");

/** A config of one worker answering "up" on `port`; `moduleBytes` pads its module (a large config). */
function config(port: number, moduleBytes = 0): Buffer {
  const pad = moduleBytes ? `// ${"x".repeat(moduleBytes)}\n` : "";
  return serializeConfig({
    services: [{ name: "main", worker: { modules: [{ name: "index.mjs", esModule: `${pad}export default { fetch() { return new Response("up"); } };` }], compatibilityDate: "2024-01-01" } }],
    sockets: [{ name: "http", address: `127.0.0.1:${port}`, http: {}, service: { name: "main" } }],
  });
}

/** A one-segment message with a second segment of three words after it, which nothing points to. */
function withSecondSegment(message: Buffer): Buffer {
  expect(message.readUInt32LE(0)).toBe(0);
  const header = Buffer.alloc(16);
  header.writeUInt32LE(1, 0);
  header.writeUInt32LE(message.readUInt32LE(4), 4);
  header.writeUInt32LE(3, 8);
  return Buffer.concat([header, message.subarray(8), Buffer.from("segment one: 24 bytes...")]);
}

/** Serves `message` with workerd until it answers on `port` (then stops it), or until workerd exits on its own. */
async function serve(message: Buffer, port: number): Promise<{ answer: string | null; code: number | null; output: string }> {
  const child = spawn(workerd, ["serve", "--binary", "-"], { cwd: root, stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (c: Buffer) => (output += c.toString()));
  child.stderr.on("data", (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.stdin.end(message);
  const deadline = Date.now() + 20_000;
  let answer: string | null = null;
  while (Date.now() < deadline && child.exitCode === null) {
    answer = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text(), () => null);
    if (answer !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (child.exitCode === null) child.kill("SIGKILL");
  const code = await exited;
  return { answer, code: answer === null ? code : null, output };
}

describe("V8 flags in the runtime's config", () => {
  it("leaves a config as it is without flags, and workerd serves it", async () => {
    const port = await freePort();
    const plain = config(port);
    expect(addFlags(plain, []).equals(plain)).toBe(true);
    expect((await serve(plain, port)).answer).toBe("up");
  });

  it("adds flags that V8 takes: --help makes it list its flags, a tuning flag leaves the server serving", async () => {
    const port = await freePort();
    const help = await serve(addFlags(config(port), ["--help"]), port);
    expect(help.answer).toBeNull();
    expect(help.output).toContain("The following syntax for options is accepted");
    expect(help.output).toContain("--heap-growing-percent");
    const tuned = await serve(addFlags(config(port), ["--heap-growing-percent=20", "--no-memory-reducer"]), port);
    expect(tuned.output).not.toMatch(/error|unknown/i);
    expect(tuned.answer).toBe("up");
  });

  it("adds them to a large config, and to one of more than one segment", async () => {
    const port = await freePort();
    // Miniflare's serializer writes one segment, however large (its real configs are above 1 MB).
    const big = config(port, 3 << 20);
    expect((await serve(addFlags(big, ["--heap-growing-percent=20"]), port)).answer).toBe("up");
    // A second segment (unused, which Cap'n Proto allows) must stay whole after the first one grows.
    const two = withSecondSegment(config(port));
    expect(two.readUInt32LE(0)).toBe(1);
    expect((await serve(two, port)).answer).toBe("up");
    const twoWithFlags = addFlags(two, ["--help"]);
    expect(twoWithFlags.readUInt32LE(0)).toBe(1);
    expect(twoWithFlags.readUInt32LE(8)).toBe(3);
    expect(twoWithFlags.subarray(-24).equals(two.subarray(-24))).toBe(true);
    expect((await serve(twoWithFlags, port)).output).toContain("The following syntax for options is accepted");
  });

  it("refuses a message that is not a whole config, or one that has V8 flags already", () => {
    const port = 9;
    const once = addFlags(config(port), ["--heap-growing-percent=20"]);
    expect(() => addFlags(once, ["--no-memory-reducer"])).toThrow(/has v8Flags already/);
    const withFlags = serializeConfig({ services: [], sockets: [], v8Flags: ["--no-memory-reducer"] });
    expect(() => addFlags(withFlags, ["--help"])).toThrow(/has v8Flags already/);
    const whole = config(port);
    expect(() => addFlags(whole.subarray(0, whole.length - 8), ["--help"])).toThrow(/segment table says/);
    expect(() => addFlags(Buffer.alloc(4), ["--help"])).toThrow(/too short/);
  });

  it("reaches the workerd processes of npm start: --v8-flags help stops it with V8's flag list", async () => {
    await mkdir(path.join(root, ".wrangler"), { recursive: true });
    const state = await mkdtemp(path.join(root, ".wrangler", "v8-flags-"));
    try {
      const r = spawnSync(process.execPath, ["scripts/start.mjs", "--port", "0", "--persist-to", state, "--v8-flags", "help"], {
        cwd: root,
        env: { ...process.env, BOOMERANG_V8_FLAGS: "" },
        encoding: "utf8",
        timeout: 90_000,
      });
      expect(r.stdout + r.stderr).toContain("The following syntax for options is accepted");
      expect(r.status).toBe(1);
    } finally {
      await rm(state, { recursive: true, force: true });
    }
  }, 120_000);

  it("reads the list as npm start takes it: dashes optional, none for none", () => {
    expect(parse("heap-growing-percent=20  --no-memory-reducer")).toEqual(["--heap-growing-percent=20", "--no-memory-reducer"]);
    expect(parse("none")).toEqual([]);
    expect(parse("")).toEqual([]);
    expect(parse(DEFAULT_V8_FLAGS)).toEqual(["--heap-growing-percent=20"]);
  });
});
