#!/usr/bin/env node
// Where the tails of the delay lag come from: does the runtime's thread wait on the disk when a delayed message is late?
//
// Serves Boomerang as `npm start` does (fresh state), then per run:
//   1. warms it with --warm seconds of closed-loop publishing (32 connections), and waits for a quiet machine;
//   2. publishes messages delayed 2 s at a steady --rate for --seconds, and records each one's lag after its due time
//      (arrival at a local destination − the publish's start − 2 s);
//   3. meanwhile records every fsync / fdatasync of the workerd process with its duration and file (`perf trace`,
//      Linux perf: root, or kernel.perf_event_paranoid ≤ 1), and, as the baseline, the disk on its own: a separate
//      process that writes 4 KiB and calls fdatasync every 20 ms in the same directory as the server's state.
// Reports per run the lag p50 / p99 / max; the messages later than --tail ms and how many of them were waiting while
// one of the runtime's syncs took ≥ --slow ms; the runtime's syncs (count, percentiles, total time, the slow ones
// with their files); and the disk probe's syncs, with how many of the runtime's slow syncs overlapped a slow one of the
// probe (then the disk itself was slow, not the runtime).
//
// With --profile, `perf record` also samples the workerd process at 1 kHz with call chains (its binary keeps its
// symbols): for each stretch in which late messages waited, how many milliseconds its main thread was on a CPU, the
// functions it was in, and the callers most of those samples share.
//
// Usage: node bench/stalls.mjs [--runs 3] [--rate 50] [--seconds 30] [--warm 10] [--slow 10] [--tail 50] [--profile]

import { spawn, spawnSync } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import path from "node:path";
import { Bench, TOKEN, cliOptions, fmt, freePort, gitCommit, groupMembers, httpRequest, keepAliveAgent, loadLoop, machineInfo, markdownTable, startDestination, summarize, waitForQuiet } from "./lib.mjs";

const SPEC = {
  options: {
    runs: { value: 3, min: 1, max: 20, help: "repetitions on the same server" },
    rate: { value: 50, min: 1, max: 1000, help: "delayed publishes a second" },
    seconds: { value: 30, min: 2, max: 600, help: "seconds of delayed publishing per run" },
    warm: { value: 10, min: 0, max: 120, help: "seconds of closed-loop publishing before each run (0 skips)" },
    slow: { value: 10, min: 1, max: 1000, help: "a sync taking at least this many ms counts as slow" },
    tail: { value: 50, min: 1, max: 10_000, help: "a message later than this many ms after its due time is a tail" },
    "max-minutes": { value: 0, min: 0, max: 240, help: "hard time limit (0 derives one from the other options)" },
  },
  flags: {
    profile: "also sample the runtime with `perf record` (1 kHz, call chains) and name what its main thread ran while late messages waited",
    "keep-state": "keep the .wrangler/bench-* work directory afterwards",
    help: "show this help",
  },
};

const opts = cliOptions(SPEC, "stalls.mjs");
const bench = new Bench("stalls", opts);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const DELAY_MS = 2000;
const PROBE_EVERY_MS = 20;
/** Milliseconds on the monotonic clock, which `perf trace -T` and the probe's process.hrtime share. */
const monoMs = () => Number(process.hrtime.bigint() / 1000n) / 1000;

/** Whether `perf trace` can watch a process here; null when it can, else why not. */
function perfProblem() {
  const r = spawnSync("perf", ["trace", "-e", "fsync", "--", "true"], { encoding: "utf8", timeout: 20_000 });
  if (r.error) return `perf is not installed (Debian: apt-get install linux-perf)`;
  if (r.status !== 0) return `perf trace failed (${(r.stderr || "").trim().split("\n")[0]}); run as root or set kernel.perf_event_paranoid to 1 or less`;
  return null;
}

/** `perf trace` lines: "<ms> ( <dur> ms): workerd/<tid> fsync(fd: <n>) = 0" → { at, ms, tid, call, fd }. */
function parseTrace(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^\s*([\d.]+) \(\s*([\d.]+) ms\): \S+?\/(\d+) (\w+)\(fd: (\d+)/.exec(line);
    if (m) out.push({ at: Number(m[1]), ms: Number(m[2]), tid: Number(m[3]), call: m[4], fd: Number(m[5]) });
  }
  return out;
}

/** A short name for a state file: "D1 WAL", "Scheduler WAL", "Runner db", … */
function fileKind(target, stateDir) {
  if (!target) return "gone";
  if (!target.startsWith(stateDir)) return path.basename(target);
  const parts = path.relative(stateDir, target).split(path.sep);
  const owner = parts.find((p) => p.startsWith("boomerang-") || p.startsWith("miniflare-")) ?? parts[0];
  const name = owner.replace(/^boomerang-/, "").replace(/^miniflare-/, "").replace(/DatabaseObject$|BucketObject$|Object$/, "");
  const file = parts.at(-1) ?? "";
  const kind = file.endsWith("-wal") ? "WAL" : file.endsWith("-shm") ? "shm" : file.startsWith("metadata") ? "metadata" : "db";
  return `${name} ${kind}`;
}

/** The disk on its own: a process writing 4 KiB and syncing it every PROBE_EVERY_MS, printing "<mono ms> <ms>" per sync. */
function startDiskProbe(dir) {
  const code = `
    const fs = require("node:fs");
    const fd = fs.openSync(${JSON.stringify(path.join(dir, "disk-probe.bin"))}, "w");
    const buf = Buffer.alloc(4096, 7);
    const mono = () => Number(process.hrtime.bigint() / 1000n) / 1000;
    setInterval(() => {
      const t = mono();
      fs.writeSync(fd, buf, 0, buf.length, 0);
      fs.fdatasyncSync(fd);
      process.stdout.write(t.toFixed(3) + " " + (mono() - t).toFixed(3) + "\\n");
    }, ${PROBE_EVERY_MS});`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  let text = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (c) => (text += c));
  const exited = new Promise((r) => child.on("exit", r));
  return {
    async stop() {
      child.kill("SIGTERM");
      await exited;
      return text
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(" ").map(Number))
        .map(([at, ms]) => ({ at, ms }));
    },
  };
}

/**
 * Starts `perf <args>` (which writes to a file of its own); the function it returns stops it with SIGINT, waits at most
 * `waitMs` for it to write its file, and resolves with what it printed on stderr.
 */
function startPerf(args, waitMs) {
  const child = spawn("perf", args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr.on("data", (c) => (err += c));
  const exited = new Promise((r) => child.on("exit", r));
  bench.onCleanup(() => child.kill("SIGKILL"));
  return async () => {
    child.kill("SIGINT");
    await Promise.race([exited, sleep(waitMs)]);
    return err.trim();
  };
}

/** `perf trace` of fsync / fdatasync in process `pid` into `file`. */
function startTrace(pid, file) {
  const stop = startPerf(["trace", "-T", "-p", String(pid), "-e", "fsync,fdatasync", "-o", file], 10_000);
  return {
    async stop() {
      const err = await stop();
      if (err) bench.warn(`perf trace: ${err.split("\n").slice(-2).join(" ")}`);
    },
  };
}

/**
 * `perf record` of process `pid` at 1 kHz with call chains, on the monotonic clock, into `file`. `stop()` returns its
 * samples: { tid, at (ms), frames (leaf first) }.
 */
function startProfile(pid, file) {
  const stopRecord = startPerf(["record", "-g", "-F", "1000", "--clockid", "monotonic", "-p", String(pid), "-o", file], 30_000);
  return {
    async stop() {
      const err = await stopRecord();
      const r = spawnSync("perf", ["script", "-i", file, "-F", "tid,time,ip,sym"], { encoding: "utf8", maxBuffer: 1 << 30 });
      if (r.status !== 0) bench.warn(`perf script: ${(r.stderr || err).trim().split("\n").slice(-2).join(" ")}`);
      const samples = [];
      let current = null;
      for (const line of (r.stdout || "").split("\n")) {
        const head = /^\s*(\d+)\s+([\d.]+):\s*$/.exec(line);
        if (head) {
          current = { tid: Number(head[1]), at: Number(head[2]) * 1000, frames: [] };
          samples.push(current);
          continue;
        }
        const frame = /^\s+[0-9a-f]+\s+(.*)$/.exec(line);
        if (frame && current) current.frames.push(frame[1].replace(/\s*\(\S*\)$/, "").trim() || "[unknown]");
      }
      return samples;
    },
  };
}

/** Late messages whose waits overlap, merged: [{ from, to, messages }]. */
function tailStretches(tails) {
  const out = [];
  for (const t of [...tails].sort((a, b) => a.due - b.due)) {
    const last = out.at(-1);
    if (last && t.due <= last.to) {
      last.to = Math.max(last.to, t.arrived);
      last.messages++;
    } else out.push({ from: t.due, to: t.arrived, messages: 1 });
  }
  return out;
}

/** A frame's name, shortened for a table: no argument lists or template arguments. */
const shortName = (f) => f.replace(/<[^<>]*(<[^<>]*>[^<>]*)*>/g, "").replace(/\(.*$/, "").slice(0, 70);

/**
 * What the main thread ran in [from, to] (wall ms): on-CPU ms, the functions it was in (leaf), and the callers that
 * most of those samples share (frames found in at least a third of them, but in fewer than 90 % of all the main
 * thread's samples of the run: not the event loop every sample passes through).
 */
function mainThreadIn(samples, tid, from, to, trunk) {
  const inWindow = samples.filter((x) => x.tid === tid && x.wallAt >= from && x.wallAt <= to);
  const leaves = new Map();
  const callers = new Map();
  for (const x of inWindow) {
    const leaf = shortName(x.frames[0] ?? "[unknown]");
    leaves.set(leaf, (leaves.get(leaf) ?? 0) + 1);
    for (const f of new Set(x.frames.slice(1).map(shortName))) if (!trunk.has(f)) callers.set(f, (callers.get(f) ?? 0) + 1);
  }
  const top = (m, n, min = 0) => [...m].filter(([, c]) => c >= min).sort((a, b) => b[1] - a[1]).slice(0, n).map(([f, c]) => `${f} ${c}`);
  return { onCpuMs: inWindow.length, top: top(leaves, 4), callers: top(callers, 4, inWindow.length / 3) };
}

/** Frames found in at least 90 % of the main thread's samples: the event loop and what every sample passes through. */
function trunkOf(samples, tid) {
  const mine = samples.filter((x) => x.tid === tid);
  const counts = new Map();
  for (const x of mine) for (const f of new Set(x.frames.map(shortName))) counts.set(f, (counts.get(f) ?? 0) + 1);
  return new Set([...counts].filter(([, c]) => c >= mine.length * 0.9).map(([f]) => f));
}

/** Whether [a0, a1] and [b0, b1] share a moment. */
const overlaps = (a0, a1, b0, b1) => a0 <= b1 && b0 <= a1;

async function measureRun(run, server, dest, workerd, stateDir, traceOk, arrivals) {
  const agent = keepAliveAgent();
  const publish = (url, headers = {}) => ({ url: `${server.base}/v2/publish/${url}`, method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain", ...headers }, body: "x" });
  if (opts.warm > 0) {
    const w = await loadLoop({ makeRequest: (i) => publish(`${dest.base}/w${run}/${i}`), concurrency: 32, durationMs: opts.warm * 1000, maxRequests: 10_000_000 });
    bench.log(`  warm-up: ${fmt(w.rps)} publishes/s for ${opts.warm} s`);
  }
  const quiet = await waitForQuiet({ timeoutS: 60 });
  bench.log(`  quiet after ${quiet.waitedS.toFixed(1)} s; ${opts.rate}/s delayed 2 s for ${opts.seconds} s …`);
  const traceFile = path.join(bench.workDir, `trace-${run}.txt`);
  const trace = traceOk ? startTrace(workerd, traceFile) : null;
  const probe = startDiskProbe(stateDir);
  const profile = opts.profile && traceOk ? startProfile(workerd, path.join(bench.workDir, `perf-${run}.data`)) : null;
  await sleep(1500); // perf trace attaches
  const wall0 = Date.now();
  const mono0 = monoMs();
  const toWall = (mono) => wall0 + (mono - mono0);
  const sent = new Map();
  const pending = [];
  const count = opts.rate * opts.seconds;
  for (let i = 0; i < count; i++) {
    const due = wall0 + (i * 1000) / opts.rate;
    if (due > Date.now()) await sleep(due - Date.now());
    sent.set(i, Date.now());
    pending.push(httpRequest({ ...publish(`${dest.base}/d${run}/${i}`, { "upstash-delay": "2s" }), agent }).catch(() => null));
  }
  await Promise.all(pending);
  const until = Date.now() + DELAY_MS + 20_000;
  const got = () => arrivals.get(`d${run}`)?.size ?? 0;
  while (got() < count && Date.now() < until) await sleep(200);
  await sleep(1000);
  const wallEnd = Date.now();
  // The files behind the traced descriptors, read while the process still holds them.
  const files = new Map();
  if (trace) await trace.stop();
  const syncs = parseTrace(trace ? readFileSync(traceFile, "utf8") : "").map((s) => ({ ...s, wallAt: toWall(s.at) }));
  for (const fd of new Set(syncs.map((s) => s.fd))) {
    let target = null;
    try {
      target = readlinkSync(`/proc/${workerd}/fd/${fd}`);
    } catch {
      // closed since
    }
    files.set(fd, fileKind(target, stateDir));
  }
  const disk = (await probe.stop()).map((s) => ({ ...s, wallAt: toWall(s.at) }));
  const samples = profile ? (await profile.stop()).map((x) => ({ ...x, wallAt: toWall(x.at) })) : null;
  agent.destroy();

  const arrived = arrivals.get(`d${run}`) ?? new Map();
  const lags = [];
  const tails = [];
  for (const [i, at] of sent) {
    const a = arrived.get(String(i));
    if (a === undefined) continue;
    const lag = a - at - DELAY_MS;
    lags.push(lag);
    if (lag > opts.tail) tails.push({ due: at + DELAY_MS, arrived: a, lag });
  }
  const slow = syncs.filter((s) => s.ms >= opts.slow);
  const slowDisk = disk.filter((s) => s.ms >= opts.slow);
  const tailsInSync = tails.filter((t) => slow.some((s) => overlaps(t.due, t.arrived, s.wallAt, s.wallAt + s.ms))).length;
  const slowWithDisk = slow.filter((s) => slowDisk.some((d) => overlaps(s.wallAt, s.wallAt + s.ms, d.wallAt, d.wallAt + d.ms))).length;
  const mainThread = syncs.filter((s) => s.tid === workerd).length;
  const trunk = samples ? trunkOf(samples, workerd) : new Set();
  const stretches = tailStretches(tails).map((st) => ({
    at: new Date(st.from).toISOString().slice(11, 23),
    ms: Math.round(st.to - st.from),
    messages: st.messages,
    ...(samples ? mainThreadIn(samples, workerd, st.from, st.to, trunk) : {}),
  }));
  const r = {
    run,
    published: count,
    delivered: lags.length,
    lag: summarize(lags),
    tails: tails.length,
    tailsInSync,
    syncs: traceOk ? { ...summarize(syncs.map((s) => s.ms)), totalMs: Math.round(syncs.reduce((a, s) => a + s.ms, 0)), onMainThread: mainThread } : null,
    slowSyncs: slow.map((s) => ({ at: new Date(s.wallAt).toISOString().slice(11, 23), ms: s.ms, file: files.get(s.fd) ?? String(s.fd) })),
    slowWithDisk,
    disk: { ...summarize(disk.map((s) => s.ms)), slow: slowDisk.length },
    stretches,
    mainThreadOnCpu: samples ? Math.round((samples.filter((x) => x.tid === workerd && x.wallAt >= wall0 && x.wallAt <= wallEnd).length / Math.max(1, wallEnd - wall0)) * 100) / 100 : null,
  };
  bench.log(`  lag p50 ${fmt(r.lag.p50)} ms, p99 ${fmt(r.lag.p99)} ms, max ${fmt(r.lag.max)} ms (${r.delivered}/${count} delivered); ${r.tails} later than ${opts.tail} ms, ${r.tailsInSync} of them during a slow sync of the runtime`);
  if (r.syncs) bench.log(`  runtime syncs: ${r.syncs.n} (${r.syncs.onMainThread} on its main thread), p50 ${r.syncs.p50} ms, p99 ${r.syncs.p99} ms, max ${r.syncs.max} ms, ${r.syncs.totalMs} ms in all; slow: ${r.slowSyncs.map((s) => `${s.at} ${s.ms.toFixed(0)} ms ${s.file}`).join(", ") || "none"}`);
  for (const st of stretches) bench.log(`  late stretch at ${st.at}: ${st.ms} ms, ${st.messages} message(s)${st.top ? `; main thread on a CPU ${st.onCpuMs} ms of it, in ${st.top.join(", ") || "nothing"}${st.callers.length ? `; called from ${st.callers.join(", ")}` : ""}` : ""}`);
  bench.log(`  disk probe: ${r.disk.n} syncs, p50 ${r.disk.p50} ms, p99 ${r.disk.p99} ms, max ${r.disk.max} ms, ${r.disk.slow} slow; runtime slow syncs with a slow probe sync at the same time: ${r.slowWithDisk}/${slow.length}`);
  return r;
}

async function main() {
  const perRun = opts.warm + 60 + opts.seconds + DELAY_MS / 1000 + 25;
  const limit = opts["max-minutes"] || Math.ceil(4 + (opts.runs * perRun) / 60);
  bench.setTimeLimit(limit);
  const machine = machineInfo();
  const traceProblem = perfProblem();
  if (traceProblem) bench.warn(`${traceProblem}: measuring without the runtime's syncs (lags and the disk probe only)`);
  bench.log(`machine: ${machine.cpus} CPU(s), node ${machine.node}, load average ${machine.loadAverageAtStart.join(" ")}; hard limit ${limit} min`);
  const result = { benchmark: "stalls", startedAt: new Date(bench.startedAt).toISOString(), machine, options: { ...opts }, source: { commit: gitCommit() }, traced: !traceProblem, runs: [], markdown: null };
  await bench.finish(
    result,
    async () => {
      const snap = bench.snapshotSources();
      const arrivals = new Map();
      const dest = await startDestination(bench, ({ at, path: p }) => {
        const [, phase = "", index = ""] = p.split("/");
        let m = arrivals.get(phase);
        if (!m) arrivals.set(phase, (m = new Map()));
        if (!m.has(index)) m.set(index, at);
      });
      const stateDir = path.join(bench.workDir, "state");
      const server = await bench.startBoomerang({ appDir: snap.appDir, persistDir: stateDir, port: await freePort(), lean: true });
      const workerd = groupMembers(server.pid).find((p) => p.command === "workerd")?.pid;
      if (!workerd) throw new Error("no workerd process found in the server's process group");
      for (let run = 1; run <= opts.runs; run++) {
        bench.check();
        bench.log(`run ${run}/${opts.runs}:`);
        result.runs.push(await measureRun(run, server, dest, workerd, stateDir, !traceProblem, arrivals));
      }
    },
    () => {
      if (!result.runs.length) return;
      const rows = result.runs.map((r) => [
        String(r.run),
        `${fmt(r.lag.p50)} / ${fmt(r.lag.p99)} / ${fmt(r.lag.max)}`,
        `${r.tails} (${r.tailsInSync})`,
        r.syncs ? `${r.syncs.n}, ${r.syncs.p50} / ${r.syncs.p99} / ${r.syncs.max} ms, ${r.syncs.totalMs} ms` : "not traced",
        r.slowSyncs.length ? r.slowSyncs.map((s) => `${s.ms.toFixed(0)} ms ${s.file}`).join(", ") : "none",
        `${r.disk.p50} / ${r.disk.p99} / ${r.disk.max} ms, ${r.disk.slow} slow (${r.slowWithDisk} with the runtime's)`,
      ]);
      result.markdown = markdownTable(
        ["run", "lag after due p50 / p99 / max, ms", `later than ${opts.tail} ms (of them during a slow sync)`, "runtime syncs: count, p50 / p99 / max, total", `runtime syncs ≥ ${opts.slow} ms`, "disk probe p50 / p99 / max (slow at the same time)"],
        rows,
      );
      console.log(`\n${result.markdown}\n`);
    },
  );
}

await main();
