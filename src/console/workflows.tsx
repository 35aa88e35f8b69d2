/** @jsxImportSource hono/jsx */
/** Upstash Workflow runs: the list, and a run's page with its steps, inputs and outputs, waits and calls. */
import type { Hono } from "hono";
import { type ConsoleEnv, callApi, readApi } from "./api";
import { done, takeFlash } from "./forms";
import { Action, Badge, Body, Field, FilterForm, Page, StateSelect, Time } from "./layout";

interface StepView {
  stepId?: number;
  stepName?: string;
  stepType?: string;
  callType?: string;
  messageId?: string;
  out?: unknown;
  concurrent?: number;
  sleepFor?: number;
  sleepUntil?: number;
  waitEventId?: string;
  timeout?: string;
  waitTimeout?: boolean;
  state?: string;
  createdAt?: number;
}
interface RunView {
  workflowRunId: string;
  workflowUrl: string;
  workflowState: string;
  workflowRunCreatedAt: number;
  workflowRunCompletedAt?: number;
  workflowRunResponse?: string;
  invoker?: { workflowRunId: string; workflowUrl: string };
  dlqId?: string;
  labels?: string[];
  steps: { type: string; steps: StepView[] }[];
}

const STATES = ["RUN_STARTED", "RUN_SUCCESS", "RUN_FAILED", "RUN_CANCELED"];
const enc = encodeURIComponent;

/** A step's output as the SDK stored it: a JSON string (shown parsed), or base64 for an event's data. */
function Output(p: { step: StepView }) {
  const s = p.step;
  if (s.stepType === "Wait") {
    if (s.waitTimeout) return <p class="small">Timed out after {s.timeout ?? "its timeout"} waiting for <code>{s.waitEventId}</code>.</p>;
    return (
      <>
        <p class="small">
          Event <code>{s.waitEventId}</code> arrived:
        </p>
        <Body base64={typeof s.out === "string" ? s.out : null} />
      </>
    );
  }
  if (s.stepType === "SleepFor") return <p class="small">Slept {s.sleepFor} s.</p>;
  if (s.stepType === "SleepUntil") {
    return (
      <p class="small">
        Slept until <Time ms={(s.sleepUntil ?? 0) * 1000} />.
      </p>
    );
  }
  if (s.out === undefined) return <p class="muted small">No output.</p>;
  return <Body text={typeof s.out === "string" ? s.out : JSON.stringify(s.out)} />;
}

export function workflowPages(app: Hono<ConsoleEnv>): void {
  app.get("/workflows", async (c) => {
    const s = c.get("session");
    const q: Record<string, string | undefined> = { count: "50", cursor: c.req.query("cursor") };
    if (c.req.query("state")) q.state = c.req.query("state");
    if (c.req.query("workflowRunId")) q.workflowRunId = c.req.query("workflowRunId")?.trim();
    if (c.req.query("workflowUrl")) q.workflowUrl = c.req.query("workflowUrl")?.trim();
    const r = await callApi<{ runs: RunView[]; cursor?: string }>(c, "GET", "/v2/workflows/logs", { query: q });
    const runs = r.ok ? r.data.runs : [];
    const next = new URLSearchParams(new URL(c.req.url).search);
    if (r.ok && r.data.cursor) next.set("cursor", r.data.cursor);
    return c.html(
      <Page title="Workflow runs" section="/console/workflows" session={s} flash={takeFlash(c) ?? (r.ok ? null : { kind: "error", text: r.error ?? "" })}>
        <FilterForm action="/console/workflows">
          <StateSelect states={STATES} value={c.req.query("state")} />
          <Field name="workflowRunId" label="Run id" value={c.req.query("workflowRunId")} />
          <Field name="workflowUrl" label="Workflow URL" value={c.req.query("workflowUrl")} />
        </FilterForm>
        {runs.length === 0 ? (
          <p class="muted">No workflow runs match.</p>
        ) : (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Run</th>
                  <th>State</th>
                  <th>Started (UTC)</th>
                  <th>Steps</th>
                  <th class="hide-sm">Workflow URL</th>
                </tr>
              </thead>
              <tbody>
                {runs.map((run) => (
                  <tr data-run-id={run.workflowRunId}>
                    <td>
                      <a class="mono small" href={`/console/workflows/${enc(run.workflowRunId)}`}>
                        {run.workflowRunId}
                      </a>
                    </td>
                    <td>
                      <Badge state={run.workflowState} />
                    </td>
                    <td class="small">
                      <Time ms={run.workflowRunCreatedAt} />
                    </td>
                    <td>{run.steps.reduce((n, g) => n + g.steps.length, 0)}</td>
                    <td class="hide-sm small mono">{run.workflowUrl}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {r.ok && r.data.cursor ? (
          <div class="pager">
            <a class="button" href={`/console/workflows?${next}`} rel="next">
              Next page
            </a>
          </div>
        ) : null}
      </Page>,
    );
  });

  app.get("/workflows/:runId", async (c) => {
    const s = c.get("session");
    const id = c.req.param("runId");
    const { runs } = await readApi<{ runs: RunView[] }>(c, "/v2/workflows/logs", { workflowRunId: id });
    const run = runs[0];
    if (!run) {
      return c.html(
        <Page title="Run not found" section="/console/workflows" session={s} flash={{ kind: "error", text: `No workflow run ${id} in this tenant.` }}>
          <a href="/console/workflows">Back to the runs</a>
        </Page>,
        404,
      );
    }
    return c.html(
      <Page title={`Run ${run.workflowRunId}`} section="/console/workflows" session={s} flash={takeFlash(c)}>
        <div class="card">
          <div class="actions">
            <Badge state={run.workflowState} />
            {run.workflowState === "RUN_STARTED" ? (
              <Action session={s} action={`/console/workflows/${enc(run.workflowRunId)}/cancel`} label="Cancel run" danger confirm="Cancel this run? What it still has pending will not run." />
            ) : null}
            {run.dlqId ? (
              <a class="button" href={`/console/dlq/${enc(run.dlqId)}`}>
                Its DLQ entry
              </a>
            ) : null}
          </div>
          <dl class="kv" style="margin-top:.75rem">
            <dt>Workflow URL</dt>
            <dd class="mono">{run.workflowUrl}</dd>
            <dt>Started</dt>
            <dd>
              <Time ms={run.workflowRunCreatedAt} />
            </dd>
            <dt>Ended</dt>
            <dd>
              <Time ms={run.workflowRunCompletedAt} />
            </dd>
            {run.invoker ? (
              <>
                <dt>Invoked by</dt>
                <dd>
                  <a class="mono" href={`/console/workflows/${enc(run.invoker.workflowRunId)}`} data-rel="invoker">
                    {run.invoker.workflowRunId}
                  </a>
                </dd>
              </>
            ) : null}
            {run.labels?.length ? (
              <>
                <dt>Labels</dt>
                <dd>{run.labels.join(", ")}</dd>
              </>
            ) : null}
          </dl>
        </div>
        <div class="card">
          <h2>Steps</h2>
          <ol class="timeline" aria-label="Steps, in order">
            {run.steps.map((g) =>
              g.steps.map((st) => (
                <li data-step={st.stepName} data-group={g.type}>
                  <strong>{st.stepName}</strong> <span class="badge s-active">{st.stepType}</span>
                  {g.type === "parallel" ? <span class="muted small"> · in parallel</span> : null}{" "}
                  {st.messageId ? (
                    <a class="mono small" href={`/console/messages/${enc(st.messageId)}`}>
                      {st.messageId}
                    </a>
                  ) : null}
                  <details open={st.stepType !== "Initial" ? undefined : true}>
                    <summary>{st.stepType === "Initial" ? "Input" : "Output"}</summary>
                    <Output step={st} />
                  </details>
                </li>
              )),
            )}
          </ol>
        </div>
        {run.workflowRunResponse !== undefined ? (
          <div class="card">
            <h2>Result</h2>
            <Body text={run.workflowRunResponse} />
          </div>
        ) : null}
        <p>
          <a href={`/console/logs?url=${enc(run.workflowUrl)}`}>Messages to this workflow URL in the logs</a>
        </p>
      </Page>,
    );
  });

  app.post("/workflows/:runId/cancel", async (c) => {
    const id = c.req.param("runId");
    const r = await callApi<{ cancelled: number }>(c, "DELETE", "/v2/workflows/runs", { query: { workflowRunIds: id } });
    const ok = r.ok && r.data.cancelled === 1;
    return done(c, `/console/workflows/${enc(id)}`, ok ? "ok" : "error", ok ? "Run cancelled." : `The run was not cancelled: ${r.error ?? "it is no longer running"}`);
  });
}
