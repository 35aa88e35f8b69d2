// The source layout rule that keeps state changes in one place: every D1 statement lives in src/db/ (runs in the
// Node runner with the end-to-end files because it reads the sources).
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

describe("source layout", () => {
  it("D1 statements are prepared only in src/db/ (and by the meter's wrapper)", async () => {
    const files = (await readdir(path.join(root, "src"), { recursive: true })).filter((f) => f.endsWith(".ts"));
    const offenders: string[] = [];
    for (const f of files) {
      const rel = path.join("src", f);
      if (rel.startsWith(path.join("src", "db") + path.sep) || rel === path.join("src", "meter.ts")) continue;
      const text = await readFile(path.join(root, rel), "utf8");
      text.split("\n").forEach((line, i) => {
        if (/\.prepare\(/.test(line) || /\.batch\(\s*\[/.test(line)) offenders.push(`${rel}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(offenders).toEqual([]);
  });
});
