/** @jsxImportSource hono/jsx */
/** The overview: messages by state, deliveries per minute, DLQ size, schedules, queues, signing keys. */
import type { Hono } from "hono";
import { dlqSize, hourStats, STATS_CAP, stateCounts } from "../db/stats";
import { shardEnv } from "../db/shards";
import { type ConsoleEnv, callApi, readApi } from "./api";
import { Action, Badge, Page } from "./layout";
import { done, takeFlash } from "./forms";

const STATES = ["CREATED", "ACTIVE", "RETRY", "DELIVERED", "FAILED", "CANCEL_REQUESTED", "CANCELED"];

function Counts(p: { title: string; counts: Record<string, number>; capped: boolean }) {
  const total = Object.values(p.counts).reduce((a, b) => a + b, 0);
  return (
    <div class="card">
      <h2>{p.title}</h2>
      <p class="stat">
        {p.capped ? "≥ " : ""}
        {total.toLocaleString("en-US")} <span class="small muted">messages</span>
      </p>
      <table>
        <tbody>
          {STATES.filter((s) => p.counts[s]).map((s) => (
            <tr>
              <td>
                <a href={`/console/logs?state=${s}`}>
                  <Badge state={s} />
                </a>
              </td>
              <td>{p.counts[s].toLocaleString("en-US")}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function overviewPage(app: Hono<ConsoleEnv>): void {
  app.get("/", async (c) => {
    const s = c.get("session");
    const db = shardEnv(c.env, s.tenant.shard).DB;
    const now = Date.now();
    const [hour, dlq, schedules, queues, keys] = await Promise.all([
      hourStats(db, s.tenant.id, now),
      dlqSize(db, s.tenant.id),
      readApi<{ scheduleId: string; isPaused?: boolean }[]>(c, "/v2/schedules"),
      readApi<{ name: string; lag: number; paused: boolean; parallelism: number }[]>(c, "/v2/queues"),
      readApi<{ current: string; next: string }>(c, "/v2/keys"),
    ]);
    const perMinute = hour.perMinute;
    const peak = Math.max(1, ...perMinute);
    const active = schedules.filter((x) => !x.isPaused).length;
    return c.html(
      <Page title="Overview" section="/console" session={s} flash={takeFlash(c)}>
        <div class="grid">
          <Counts title="Last hour" counts={hour.counts} capped={hour.capped} />
          {/* Up to 100,000 rows to count: fetched once the page is shown (src/console/assets.ts), so it never holds the page up. */}
          <div id="day-counts" data-fragment="/console/overview/day">
            <div class="card">
              <h2>Last 24 hours</h2>
              <p class="muted">
                <a href="/console/overview/day">Count the last 24 hours</a>
              </p>
            </div>
          </div>
          <div class="card">
            <h2>Dead-letter queue</h2>
            <p class="stat">
              <a href="/console/dlq">{dlq > STATS_CAP ? `≥ ${STATS_CAP.toLocaleString("en-US")}` : dlq.toLocaleString("en-US")}</a>
            </p>
            <h2>Schedules</h2>
            <p>
              <a href="/console/schedules">
                {active} active, {schedules.length - active} paused
              </a>
            </p>
          </div>
        </div>
        <div class="card">
          <h2 id="chart-title">Deliveries per minute, last hour</h2>
          <div class="chart" role="img" aria-labelledby="chart-title" aria-describedby="chart-desc">
            {perMinute.map((n, i) => (
              <span style={`height:${Math.round((n / peak) * 100)}%`} title={`${60 - i} min ago: ${n}`}></span>
            ))}
          </div>
          <p class="muted small" id="chart-desc">
            Peak {Math.max(...perMinute)} per minute; {perMinute.reduce((a, b) => a + b, 0)} delivered in the hour.
          </p>
        </div>
        <div class="card">
          <h2>Queues</h2>
          {queues.length ? (
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th>Queue</th>
                    <th>Lag (waiting)</th>
                    <th>Parallelism</th>
                    <th>State</th>
                  </tr>
                </thead>
                <tbody>
                  {queues.map((q) => (
                    <tr>
                      <td>
                        <a href={`/console/queues/${encodeURIComponent(q.name)}`}>{q.name}</a>
                      </td>
                      <td>{q.lag}</td>
                      <td>{q.parallelism}</td>
                      <td>
                        <Badge state={q.paused ? "paused" : "active"} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : (
            <p class="muted">No queues yet.</p>
          )}
        </div>
        <div class="card">
          <h2>Signing keys</h2>
          <dl class="kv mono small">
            <dt>Current</dt>
            <dd>{keys.current}</dd>
            <dt>Next</dt>
            <dd>{keys.next}</dd>
          </dl>
          <p class="muted small">Rotating makes the next key current and creates a new next key. Receivers that check both keys keep working.</p>
          <Action session={s} action="/console/keys/rotate" label="Rotate signing keys" confirm="Rotate the signing keys? The current key will be retired." danger />
        </div>
      </Page>,
    );
  });

  /** The 24-hour counts, as a fragment the overview fetches (or a page of its own without JavaScript). */
  app.get("/overview/day", async (c) => {
    const s = c.get("session");
    const day = await stateCounts(shardEnv(c.env, s.tenant.shard).DB, s.tenant.id, Date.now() - 86_400_000);
    const card = <Counts title="Last 24 hours" counts={day.counts} capped={day.capped} />;
    if (c.req.header("x-fragment") === "1") return c.html(card);
    return c.html(
      <Page title="Last 24 hours" section="/console" session={s}>
        {card}
      </Page>,
    );
  });

  app.post("/keys/rotate", async (c) => {
    const r = await callApi(c, "POST", "/v2/keys/rotate");
    return done(c, "/console", r.ok ? "ok" : "error", r.ok ? "Signing keys rotated." : `Rotation failed: ${r.error}`);
  });
}
