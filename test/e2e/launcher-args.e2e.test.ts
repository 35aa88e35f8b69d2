// The launchers' arguments (`npm start`: scripts/start.mjs, `npm run dev`: scripts/dev.mjs): --help lists the options
// and starts nothing; an argument a launcher does not know stops it before it starts anything, naming the argument
// (`npm start -- --help` used to start a server on port 8080, and a misspelled flag was ignored without a word).
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

function launch(script: string, args: string[]) {
  const r = spawnSync(process.execPath, [path.join(root, "scripts", script), ...args], { cwd: root, encoding: "utf8", timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("launcher arguments", () => {
  it("--help lists the options of each launcher and exits 0 without starting anything", () => {
    const start = launch("start.mjs", ["--help"]);
    expect(start.status).toBe(0);
    for (const option of ["--port", "--ip", "--persist-to", "--var", "--sweep-every", "--debug", "--no-relay", "--d1-host"]) expect(start.stdout).toContain(option);
    expect(start.stdout).not.toMatch(/applying D1 migrations|ready in/);
    const dev = launch("dev.mjs", ["-h"]);
    expect(dev.status).toBe(0);
    for (const option of ["--port", "--quiet", "--debug", "--sweep-every"]) expect(dev.stdout).toContain(option);
    expect(dev.stdout).not.toMatch(/applying D1 migrations|ready in/);
  });

  it("stops with status 2 and names an unknown argument, or an option without its value, before starting anything", () => {
    const unknown = launch("start.mjs", ["--port", "0", "--no-realy"]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown argument "--no-realy"');
    expect(unknown.stderr).toContain("--no-relay");
    const bare = launch("dev.mjs", ["stray"]);
    expect(bare.status).toBe(2);
    expect(bare.stderr).toContain('unknown argument "stray"');
    const noValue = launch("dev.mjs", ["--quiet", "--port"]);
    expect(noValue.status).toBe(2);
    expect(noValue.stderr).toContain("--port needs a value");
    // A flag where a value should be is not taken as the value (it would have become a folder named "--quiet").
    const flagAsValue = launch("start.mjs", ["--persist-to", "--quiet"]);
    expect(flagAsValue.status).toBe(2);
    expect(flagAsValue.stderr).toContain("--persist-to needs a value");
    for (const r of [unknown, bare, noValue, flagAsValue]) expect(r.stdout).not.toMatch(/applying D1 migrations|ready in/);
  });
});
