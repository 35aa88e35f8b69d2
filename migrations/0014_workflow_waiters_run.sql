-- Migration number: 0014 	 a run's waits, found by run
--
-- When a run ends, its waits are dropped and their timeout messages cancelled. By primary key (tenant, event, run)
-- that meant reading every waiter of the tenant (the delete) and every run's waiter of each event the run had waited
-- for (the lookup of timeout messages): fine for a few waiting runs, a scan per run end for many. The index costs a
-- written row when a wait starts and one when it ends; waits are few next to messages.
CREATE INDEX workflow_waiters_run ON workflow_waiters(tenant_id, run_id);
