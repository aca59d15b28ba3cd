-- examples/failed_calls.lua: print an eval run's failed calls (failed_agent_count > 0)
-- with the agents that failed them.
--
--   BLAND_API_KEY=... lua5.4 examples/failed_calls.lua RUN_ID
--
-- The key comes from BLAND_API_KEY, the host from BLAND_BASE_URL (default
-- https://api.bland.ai). `make demo` runs it against the bundled fake API.
local blandeval = require "blandeval"

local run_id = arg[1] or os.getenv("RUN_ID")
if not run_id then
  io.stderr:write("usage: failed_calls.lua RUN_ID\n")
  os.exit(2)
end

local client = blandeval.new {}

-- the agents of the run, frozen at submission: their names for the report
local agent_names = {}
for snapshot in client:agent_snapshots(run_id) do
  agent_names[snapshot.id] = snapshot.name
end

local failed, last_page
for result, page in client:failed_call_results(run_id, { include_agent_results = true }) do
  failed = (failed or 0) + 1
  last_page = page
  print(("%s  %-32s %-8s %d agent(s) failed"):format(result.call_id,
    result.call_display_name or "(unnamed call)", result.status, result.failed_agent_count))
  for _, verdict in ipairs(result.agent_results) do
    if verdict.failed then
      print(("    %-40s %s: %s"):format(
        agent_names[verdict.eval_run_agent_snapshot_id] or verdict.eval_agent_id,
        verdict.failure_code or "FAILED", verdict.failure_message or "(no message)"))
    end
  end
end
if last_page then
  print(("%d failed calls; run %s, %s calls resolved"):format(failed, tostring(last_page.run_status),
    tostring(last_page.run_resolved_call_count)))
else
  print("no failed calls")
end
client:close()
