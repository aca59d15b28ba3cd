-- examples/failed_handler.lua: the content handler of examples/nginx.conf.
-- GET /runs/{run_id}/failed answers with the run's failed calls and the agents
-- that failed them, as JSON. Inside nginx blandeval uses subrequests (the ngx
-- transport): the worker keeps serving other requests while this one waits.
local blandeval = require "blandeval"
local cjson = require "cjson.safe"

local M = {}

local function reply(status, value)
  ngx.status = status
  -- an empty list stays a list (cjson writes an empty table as {})
  ngx.say((cjson.encode(value):gsub('"(failed[%w_]*)":{}', '"%1":[]')))
end

--- M.serve(run_id [, opts]): opts are extra blandeval.new options.
function M.serve(run_id, opts)
  local options = { api_key = os.getenv("BLAND_API_KEY") }
  for k, v in pairs(opts or {}) do options[k] = v end
  local client = blandeval.new(options)

  local ok, result = pcall(function()
    local agents = {}
    for snapshot in client:agent_snapshots(run_id) do agents[snapshot.id] = snapshot.name end
    local summary = { run_id = run_id, failed = {} }
    for r, page in client:call_results(run_id, { include_agent_results = true }) do
      summary.run_status, summary.resolved_calls = page.run_status, page.run_resolved_call_count
      summary.calls = (summary.calls or 0) + 1
      if type(r.failed_agent_count) == "number" and r.failed_agent_count > 0 then
        local failed = {}
        for _, v in ipairs(r.agent_results or {}) do
          if v.failed then
            failed[#failed + 1] = { agent = agents[v.eval_run_agent_snapshot_id] or v.eval_agent_id,
              code = v.failure_code, message = v.failure_message }
          end
        end
        summary.failed[#summary.failed + 1] = { call_id = r.call_id, name = r.call_display_name,
          status = r.status, failed_agents = failed }
      end
    end
    return summary
  end)
  if ok then return reply(200, result) end
  if type(result) ~= "table" then error(result, 0) end      -- a bug, not an API failure
  -- an error value: say what the API said, with its status where it is a client error
  local status = (result.status == 404 or result.status == 401) and result.status or 502
  return reply(status, { error = { kind = result.kind, status = result.status, code = result.code,
    message = result.message, request_id = result.request_id } })
end

return M
