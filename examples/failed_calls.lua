-- examples/failed_calls.lua: print an eval run's failed calls (failed_agent_count > 0)
-- with the agents that failed them.
--
--   lua5.4 examples/failed_calls.lua CALL_RESULTS.json [AGENT_SNAPSHOTS.json]
--       reads saved bodies of List Call Results (?include_agent_results=true) and
--       List Agent Snapshots, e.g. as fetched with curl from the real API;
--   lua5.4 examples/failed_calls.lua
--       uses a realistic sample page from the bundled generator (what `make demo` runs).
local blandeval = require "blandeval"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local results_text, snapshots_text
if arg[1] then
  results_text = read(arg[1])
  snapshots_text = arg[2] and read(arg[2])
else
  local pagegen = require "pagegen"
  results_text = pagegen.call_results_page { seed = 42, count = 100, include_agent_results = true, agents = 3 }
  snapshots_text = pagegen.agent_snapshots_page { seed = 42, count = 3 }
end

-- Both endpoints wrap their list in {"data": {...}, "errors": ...}.
local function list(text, what)
  local body, err = blandeval.decode(text)
  if not body then error(what .. ": " .. err, 0) end
  if body.errors then error(what .. ": the API answered with errors", 0) end
  return body.data.data, body
end

local results, page = list(results_text, "call results")
local agent_names = {}
if snapshots_text then
  for _, s in ipairs((list(snapshots_text, "agent snapshots"))) do
    agent_names[s.id] = s.name
  end
end

local failed = 0
for _, r in ipairs(results) do
  if (r.failed_agent_count or 0) > 0 then
    failed = failed + 1
    print(("%s  %-32s %s  %d agent(s) failed"):format(r.call_id, r.call_display_name or "(unnamed call)",
      r.status, r.failed_agent_count))
    for _, a in ipairs(r.agent_results) do
      if a.failed then
        print(("    %-36s %s: %s"):format(agent_names[a.eval_run_agent_snapshot_id] or a.eval_agent_id,
          a.failure_code or "FAILED", a.failure_message or "(no message)"))
      end
    end
  end
end
print(("%d of %d calls on this page failed (run %s, %s calls resolved)"):format(failed, #results,
  tostring(page.run_status), tostring(page.run_resolved_call_count)))
