-- blandeval: read the results of Bland AI eval runs.
-- The C core (blandeval.core) does the work; this file is the public face.
local core = require "blandeval.core"
local Client = require "blandeval.client"

local blandeval = {
  _VERSION = core._VERSION,
  null = core.null,          -- the JSON null sentinel; == cjson.null == ngx.null
  decode = core.decode,      -- decode(text [, opts]) -> value | nil, message, offset
  new = Client.new,          -- new{ api_key=, base_url=, ... } -> client
  query = require "blandeval.query",             -- query(client:call_results(...)):filter(...)
  filters = require("blandeval.query").filters,  -- predicates over call results
}

return blandeval
