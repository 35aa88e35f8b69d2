-- Upstash Workflow runs (src/workflow/runs.ts, docs/workflows.md): one row per run, its history inside.
CREATE TABLE workflow_runs (
  tenant_id TEXT NOT NULL,
  run_id TEXT NOT NULL,
  url TEXT NOT NULL,
  state TEXT NOT NULL,               -- RUN_STARTED, RUN_SUCCESS, RUN_FAILED, RUN_CANCELED
  created_at INTEGER NOT NULL,
  completed_at INTEGER,
  response TEXT,                     -- the run's result, as the SDK's last call sent it
  config TEXT NOT NULL,              -- JSON: what the first message set, applied to every later one
  history TEXT NOT NULL DEFAULT '[]', -- JSON array of {m: message id, c: call type, b: body (base64)}
  dlq_id TEXT,
  invoker TEXT,                      -- JSON: the run that invoked this one (context.invoke), or NULL
  PRIMARY KEY (tenant_id, run_id)
) WITHOUT ROWID;
CREATE INDEX workflow_runs_created ON workflow_runs(tenant_id, created_at);
-- Pruning finds ended runs past LOG_RETENTION through this (only ended runs are in it).
CREATE INDEX workflow_runs_done ON workflow_runs(completed_at) WHERE state <> 'RUN_STARTED';
