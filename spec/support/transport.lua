-- Clients for the client specs, for the transport they run with: libcurl to the fake
-- API's URL, or, inside nginx (spec/support/nginx_busted.lua), the ngx transport
-- through the test proxy location /_bland_test, pointed at the same fake API. Specs
-- of libcurl's own options and behaviour carry the tag #curl, which the run inside
-- nginx leaves out.
local blandeval = require "blandeval"

local M = {}

-- short waits between retries, so that fault runs stay quick
M.FAST = { retry_base_delay = 0.01, retry_max_delay = 0.05 }

--- options(o, api): o adjusted for the transport (o is changed and returned).
function M.options(o, api)
  if ngx then
    package.loaded.blandeval_test_upstream = api.base_url
    o.base_url, o.transport, o.location = nil, "ngx", "/_bland_test"
  else
    o.base_url = o.base_url or api.base_url
  end
  return o
end

--- client(api [, opts]): a client of the fake API with key "test-key" and FAST retries;
-- opts override them.
function M.client(api, opts)
  local o = { api_key = "test-key" }
  for k, v in pairs(M.FAST) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  return blandeval.new(M.options(o, api))
end

--- fresh(id): id with a "@tag" no other spec (or earlier run) has used, for the fake API's
-- runs that keep per-id state (progress polls, once-per-cursor faults).
local fresh_n = 0
function M.fresh(id)
  fresh_n = fresh_n + 1
  return ("%s@f%d-%d-%d"):format(id, os.time(), math.random(1, 1e9), fresh_n)
end

--- ids_of(items): the items' ids, in order.
function M.ids_of(items)
  local out = {}
  for i, item in ipairs(items) do out[i] = item.id end
  return out
end

return M
