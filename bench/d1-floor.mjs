#!/usr/bin/env node
// What one D1 call costs the local runtime, apart from Boomerang: the floor under every publish and delivery of
// `npm start`, where D1's SQLite runs on the same workerd thread as the worker.
//
// Serves a probe worker (below) with Miniflare's API and a local D1 database on disk, as `npm start` does. Its table
// has the shape of Boomerang's hot writes: a TEXT primary key that grows with time (message ids do), a second index
// (tenant, time), a JSON log and a small body. Each request runs `--calls` D1 calls back to back; two clients keep
// the thread busy. For each kind of call it reports calls/s, the runtime's CPU per call (/proc/<pid>/stat) and its
// read and write system calls per call (/proc/<pid>/io), and derives the cost of a written row.
//
// Kinds: `select`: a batch of one `SELECT 1`; `insert-N`: a batch of N one-row INSERTs (a group commit of N
// publishes); `update-N`: a batch of N UPDATEs by id of rows the inserts wrote (N outcomes written together);
// `insertjson-N` and `updatejson-N`: the same N rows in one statement, from a JSON array read with json_each.
//
// Usage: node bench/d1-floor.mjs [--seconds 5] [--rows 1,12,32] [--calls 10] [--prefill N] [--help]

import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { Bench, HOST, cliOptions, fmt, freePort, gitCommit, machineInfo, markdownTable, median, root } from "./lib.mjs";

const SPEC = {
  options: {
    seconds: { value: 5, min: 1, max: 120, help: "length of each measured round" },
    rows: { value: "1,12,32", help: "rows per insert and update batch, comma-separated" },
    prefill: { value: 0, min: 0, max: 1_000_000, help: "rows written before the rounds (a table that has grown)" },
    calls: { value: 10, min: 1, max: 1000, help: "D1 calls per request to the probe" },
    rounds: { value: 2, min: 1, max: 10, help: "rounds of every kind (the median is reported)" },
    "max-minutes": { value: 10, min: 1, max: 60, help: "hard time limit" },
  },
  flags: { "keep-state": "keep the .wrangler/bench-* work directory afterwards", help: "show this help" },
};

const opts = cliOptions(SPEC, "d1-floor.mjs", (o) => (String(o.rows).split(",").every((r) => /^\d+$/.test(r) && Number(r) >= 1 && Number(r) <= 100) ? null : "--rows takes numbers from 1 to 100, e.g. 1,12,32"));
const bench = new Bench("d1-floor", opts);

const PROBE = `
const SCHEMA = [
  "CREATE TABLE IF NOT EXISTS probe (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, created_at INTEGER NOT NULL, state TEXT NOT NULL, log TEXT NOT NULL, body BLOB)",
  "CREATE INDEX IF NOT EXISTS probe_tenant ON probe (tenant_id, created_at)",
];
let seq = 0;
let next = 0;
const ids = [];
const newId = () => "msg_" + Date.now().toString(36).padStart(9, "0") + String(seq++).padStart(8, "0") + crypto.randomUUID().slice(0, 8);
export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    if (u.pathname === "/setup") {
      await env.DB.batch(SCHEMA.map((s) => env.DB.prepare(s)));
      const prefill = Number(u.searchParams.get("prefill") || 0);
      const log = JSON.stringify([{ t: Date.now(), s: "CREATED" }, { t: Date.now(), s: "DELIVERED", status: 200, headers: { "Content-Type": ["text/plain"] }, body: "ok" }]);
      for (let done = 0; done < prefill; ) {
        const n = Math.min(500, prefill - done);
        const rows = Array.from({ length: n }, () => [newId(), "probe", Date.now(), "DELIVERED", log]);
        await env.DB.prepare("INSERT INTO probe (id, tenant_id, created_at, state, log, body) SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, randomblob(64) FROM json_each(?1) j").bind(JSON.stringify(rows)).run();
        done += n;
      }
      return new Response("ok");
    }
    const kind = u.searchParams.get("kind");
    const rows = Number(u.searchParams.get("rows") || 1);
    const calls = Number(u.searchParams.get("calls") || 1);
    const body = new TextEncoder().encode('{"hello":"world"}');
    for (let i = 0; i < calls; i++) {
      if (kind === "select") {
        await env.DB.batch([env.DB.prepare("SELECT 1")]);
      } else if (kind === "insert") {
        const now = Date.now();
        const stmts = [];
        for (let r = 0; r < rows; r++) {
          const id = newId();
          ids.push(id);
          stmts.push(env.DB.prepare("INSERT INTO probe (id, tenant_id, created_at, state, log, body) VALUES (?1, ?2, ?3, 'CREATED', ?4, ?5) ON CONFLICT (id) DO NOTHING")
            .bind(id, "probe", now, JSON.stringify([{ t: now, s: "CREATED" }]), body));
        }
        await env.DB.batch(stmts);
      } else if (kind === "update") {
        if (ids.length < rows) return new Response("run an insert round first", { status: 409 });
        const now = Date.now();
        // Rows written a while ago, in the order they were written, round and round.
        const stmts = Array.from({ length: rows }, () => ids[next++ % ids.length]).map((id) => env.DB.prepare("UPDATE probe SET state = 'DELIVERED', log = json_insert(log, '$[#]', json(?2)) WHERE id = ?1")
          .bind(id, JSON.stringify({ t: now, s: "DELIVERED", status: 200, body: "ok" })));
        await env.DB.batch(stmts);
      } else if (kind === "insertjson") {
        // The same rows in one statement: a JSON array of rows, read with json_each.
        const now = Date.now();
        const rowsJson = [];
        for (let r = 0; r < rows; r++) {
          const id = newId();
          ids.push(id);
          rowsJson.push([id, "probe", now, JSON.stringify([{ t: now, s: "CREATED" }])]);
        }
        await env.DB.batch([
          env.DB.prepare("INSERT INTO probe (id, tenant_id, created_at, state, log, body) SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, 'CREATED', j.value ->> 3, ?2 FROM json_each(?1) j WHERE true ON CONFLICT (id) DO NOTHING")
            .bind(JSON.stringify(rowsJson), body),
        ]);
      } else if (kind === "updatejson") {
        if (ids.length < rows) return new Response("run an insert round first", { status: 409 });
        const now = Date.now();
        const pick = Array.from({ length: rows }, () => ids[next++ % ids.length]);
        await env.DB.batch([
          env.DB.prepare("UPDATE probe SET state = 'DELIVERED', log = json_insert(log, '$[#]', json(?2)) WHERE id IN (SELECT value FROM json_each(?1))")
            .bind(JSON.stringify(pick), JSON.stringify({ t: now, s: "DELIVERED", status: 200, body: "ok" })),
        ]);
      } else {
        return new Response("unknown kind", { status: 400 });
      }
    }
    return new Response("ok");
  },
};
`;

/** The pid of the workerd process in a process group. */
function workerdPid(pgid) {
  for (const d of readdirSafe("/proc")) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const fields = stat.slice(close + 2).split(" ");
      if (Number(fields[2]) === pgid && stat.slice(stat.indexOf("(") + 1, close) === "workerd") return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

function readdirSafe(dir) {
  try {
    return readdirSync(dir).filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
}

/** CPU seconds and read/write system calls of one process so far. */
function usage(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const io = Object.fromEntries(readFileSync(`/proc/${pid}/io`, "utf8").trim().split("\n").map((l) => l.split(": ")).map(([k, v]) => [k, Number(v)]));
  return { cpu: (Number(fields[11]) + Number(fields[12])) / 100, reads: io.syscr, writes: io.syscw };
}

async function round(base, pid, kind, rows) {
  const before = usage(pid);
  const t0 = performance.now();
  const deadline = t0 + opts.seconds * 1000;
  let calls = 0;
  const client = async () => {
    while (performance.now() < deadline) {
      const res = await fetch(`${base}/run?kind=${kind}&rows=${rows}&calls=${opts.calls}`);
      const text = await res.text();
      if (res.status !== 200) throw new Error(`probe answered ${res.status}: ${text}`);
      calls += opts.calls;
    }
  };
  await Promise.all([client(), client()]);
  const wall = (performance.now() - t0) / 1000;
  const after = usage(pid);
  return {
    callsPerSecond: calls / wall,
    cpuMsPerCall: ((after.cpu - before.cpu) * 1000) / calls,
    writesPerCall: (after.writes - before.writes) / calls,
    readsPerCall: (after.reads - before.reads) / calls,
    cores: (after.cpu - before.cpu) / wall,
  };
}

async function main() {
  bench.setTimeLimit(opts["max-minutes"]);
  const result = { benchmark: "d1-floor", startedAt: new Date(bench.startedAt).toISOString(), machine: machineInfo(), options: { ...opts }, source: { commit: gitCommit() } };
  await bench.finish(result, async () => {
    const toml = readFileSync(path.join(root, "wrangler.toml"), "utf8");
    const id = /database_id\s*=\s*"([^"]+)"/.exec(toml)?.[1];
    if (!id) throw new Error("no database_id in wrangler.toml");
    const port = await freePort();
    const options = {
      modules: [{ type: "ESModule", path: "probe.mjs", contents: PROBE }],
      compatibilityDate: "2024-09-23",
      host: HOST,
      port,
      d1Databases: { DB: id },
      defaultPersistRoot: path.join(bench.workDir, "state", "v3"),
    };
    const probe = await bench.startMiniflare({ label: "the D1 probe", options });
    const pid = workerdPid(probe.pid);
    if (!pid) throw new Error("could not find the probe's workerd process in /proc");
    if (opts.prefill > 0) bench.log(`writing ${fmt(opts.prefill)} rows first …`);
    const setup = await fetch(`${probe.base}/setup?prefill=${opts.prefill}`);
    if (setup.status !== 200) throw new Error(`probe setup answered ${setup.status}`);
    const kinds = [["select", 1], ...String(opts.rows).split(",").flatMap((r) => ["insert", "update", "insertjson", "updatejson"].map((k) => [k, Number(r)]))];
    const samples = {};
    for (let r = 1; r <= opts.rounds; r++) {
      for (const [kind, rows] of kinds) {
        const key = kind === "select" ? "select" : `${kind}-${rows}`;
        bench.log(`round ${r}/${opts.rounds}: ${key} for ${opts.seconds} s …`);
        (samples[key] ??= []).push(await round(probe.base, pid, kind, rows));
      }
    }
    const med = (key, f) => median(samples[key].map((s) => s[f]));
    const selectMs = med("select", "cpuMsPerCall");
    result.kinds = Object.keys(samples).map((key) => {
      const rows = key === "select" ? 0 : Number(key.split("-")[1]);
      const cpu = med(key, "cpuMsPerCall");
      return {
        kind: key,
        callsPerSecond: Math.round(med(key, "callsPerSecond")),
        cpuMsPerCall: Number(cpu.toFixed(3)),
        cpuMsPerRow: rows ? Number(((cpu - selectMs) / rows).toFixed(3)) : null,
        writeSyscallsPerCall: Number(med(key, "writesPerCall").toFixed(1)),
        readSyscallsPerCall: Number(med(key, "readsPerCall").toFixed(1)),
        cores: Number(med(key, "cores").toFixed(2)),
      };
    });
    result.samples = samples;
    console.log(`\nD1 on the local runtime, medians of ${opts.rounds} rounds of ${opts.seconds} s (2 clients, ${opts.calls} calls per request):\n`);
    console.log(
      markdownTable(
        ["call", "calls/s", "runtime CPU ms per call", "ms per row beyond SELECT 1", "write syscalls per call", "read syscalls per call", "cores"],
        result.kinds.map((k) => [k.kind, fmt(k.callsPerSecond), k.cpuMsPerCall.toFixed(2), k.cpuMsPerRow === null ? "–" : k.cpuMsPerRow.toFixed(2), fmt(k.writeSyscallsPerCall, 1), fmt(k.readSyscallsPerCall, 1), k.cores.toFixed(2)]),
        ["l", "r", "r", "r", "r", "r", "r"],
      ),
    );
  });
}

main();
