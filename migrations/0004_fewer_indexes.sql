-- Migration number: 0004 	 fewer index writes per message
-- D1 bills every index entry a write touches as a written row. Two indexes cost more than they earn:
-- events_time (pruning walks the oldest events by seq instead, which is in time order) and
-- messages_tenant_created (bulk cancel walks the unfinished-by-due index, which holds only pending messages).
DROP INDEX IF EXISTS events_time;
DROP INDEX IF EXISTS messages_tenant_created;
