-- blandeval.client: blandeval.new and the client's methods. Options and
-- parameters are checked here, once, with messages that name the argument; the
-- C core does the requests, the paging and the retries.
local core = require "blandeval.core"
-- loaded now: a require that fails midway (out of memory) stays failed on LuaJIT
local many = require "blandeval.many"

local type, tostring, pairs, ipairs, error, setmetatable = type, tostring, pairs, ipairs, error, setmetatable
local ngx = ngx
local getenv, floor = os.getenv, math.floor
local format = string.format

local Client = {}
Client.__index = Client

local DEFAULT_BASE_URL = "https://api.bland.ai"
local MAX_PAGE = 100

-- Raises a usage error at the caller of the public function: level 3 from
-- blandeval.new itself, 5 through usage() from the checks that methods call.
local function usage_at(level, fname, argn, fmt, ...)
  error(format("bad argument #%d to '%s' (%s)", argn, fname, format(fmt, ...)), level)
end
local function usage(fname, argn, fmt, ...) usage_at(5, fname, argn, fmt, ...) end

local function is_whole(v, lo, hi)
  return type(v) == "number" and v == floor(v) and v >= lo and v <= hi
end

-- option = { checker, description }; a checker returns true when the value is good
local function number_in(lo, hi)
  return function(v) return type(v) == "number" and v == v and v >= lo and v <= hi end
end
local function whole_in(lo, hi) return function(v) return is_whole(v, lo, hi) end end
local function is_boolean(v) return type(v) == "boolean" end
local function header_safe(v) return type(v) == "string" and not v:find("[%z\r\n]") end
local function is_string(v) return type(v) == "string" and v ~= "" end

local OPTIONS = {
  api_key = { header_safe, "a string without CR, LF or NUL" },
  base_url = { is_string, "an http(s) URL string" },
  timeout = { number_in(0.001, 86400), "a number of seconds > 0" },
  connect_timeout = { number_in(0.001, 86400), "a number of seconds > 0" },
  deadline = { number_in(0.001, 86400 * 7), "a number of seconds > 0" },
  max_retries = { whole_in(0, 100), "a whole number from 0 to 100" },
  retry_base_delay = { number_in(0, 3600), "a number of seconds >= 0" },
  retry_max_delay = { number_in(0, 3600), "a number of seconds >= 0" },
  retry_after_max = { number_in(0, 86400), "a number of seconds >= 0" },
  page_size = { whole_in(1, MAX_PAGE), "a whole number from 1 to 100" },
  max_body = { whole_in(1, 2 ^ 53), "a whole number of bytes >= 1" },
  keep_nulls = { is_boolean, "a boolean" },
  prefetch = { is_boolean, "a boolean" },
  compress = { is_boolean, "a boolean" },
  allow_insecure = { is_boolean, "a boolean" },
  user_agent = { header_safe, "a string without CR, LF or NUL" },
  cainfo = { is_string, "a file name" },
  capath = { is_string, "a directory name" },
  transport = { function(v) return v == "curl" or v == "ngx" end, '"curl" or "ngx"' },
  location = { function(v) return type(v) == "string" and v:match("^/[%w%-_./]*$") ~= nil end,
    "an nginx location path such as \"/_bland\"" },
}

-- Options that configure libcurl; under nginx the proxying location sets them.
local CURL_ONLY = { "base_url", "timeout", "connect_timeout", "cainfo", "capath", "user_agent", "max_body",
  "allow_insecure", "compress" }

local function user_agent()
  local vm = jit and jit.version or _VERSION
  return format("blandeval/%s (libcurl/%s; %s)", core._VERSION, core.libcurl_version, vm)
end

-- Whether host is this machine: the key may travel over plain http only there.
local function is_loopback(host)
  return host == "localhost" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil or host == "[::1]"
end

-- The retry policy as core.retry_wait takes it, and the deadline (for blandeval.many).
local function policy_of(opts)
  return { max_retries = opts.max_retries or 2, base = opts.retry_base_delay or 0.5,
    max = opts.retry_max_delay or 8, after_max = opts.retry_after_max or 60, deadline = opts.deadline }
end

--- blandeval.new{ api_key=, base_url=, timeout=, ... } -> client
function Client.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then usage_at(3, "new", 1, "table expected, got %s", type(opts)) end
  for k, v in pairs(opts) do
    local o = OPTIONS[k]
    if not o then usage_at(3, "new", 1, "unknown option '%s'", tostring(k)) end
    if not o[1](v) then usage_at(3, "new", 1, "option '%s' must be %s", k, o[2]) end
  end
  local key = opts.api_key or getenv("BLAND_API_KEY")
  if key == nil or key == "" then
    usage_at(3, "new", 1, "no API key: pass api_key or set BLAND_API_KEY")
  end
  if not header_safe(key) then usage_at(3, "new", 1, "option 'api_key' must be %s", OPTIONS.api_key[2]) end
  -- inside nginx, where libcurl would block the worker, subrequests do the I/O
  local in_nginx = ngx ~= nil and ngx.get_phase ~= nil
  local transport = opts.transport or (in_nginx and "ngx" or "curl")
  if transport == "ngx" and not in_nginx then
    usage_at(3, "new", 1, "transport 'ngx' works only inside nginx (ngx_http_lua_module)")
  end
  if transport == "ngx" then
    for _, k in ipairs(CURL_ONLY) do
      if opts[k] ~= nil then
        usage_at(3, "new", 1, "option '%s' is for the curl transport: under nginx, configure the "
          .. "location that proxies to the API", k)
      end
    end
    local backend = require("blandeval.ngx").new {
      location = opts.location or "/_bland", api_key = key, keep_nulls = opts.keep_nulls,
      deadline = opts.deadline, max_retries = opts.max_retries, retry_base_delay = opts.retry_base_delay,
      retry_max_delay = opts.retry_max_delay, retry_after_max = opts.retry_after_max,
    }
    return setmetatable({ _c = backend, page_size = opts.page_size or MAX_PAGE, keep_nulls = opts.keep_nulls,
      policy = policy_of(opts) }, Client)
  end
  if opts.location ~= nil then usage_at(3, "new", 1, "option 'location' is for the ngx transport") end
  local base = opts.base_url or getenv("BLAND_BASE_URL") or DEFAULT_BASE_URL
  local scheme, host = base:match("^(https?)://([^/?#]+)")
  if not scheme or base:find("[%s%z?#]") then
    usage_at(3, "new", 1, "base_url must be an http:// or https:// URL, got %q", base)
  end
  host = host:gsub("^.*@", ""):gsub(":%d+$", "")
  if scheme == "http" and not is_loopback(host) and not opts.allow_insecure then
    usage_at(3, "new", 1, "base_url %s is plain http to another host: the API key would travel "
      .. "unencrypted (use https, or allow_insecure = true)", base)
  end
  local c = core.client {
    api_key = key,
    base_url = (base:gsub("/+$", "")),
    timeout = opts.timeout,
    connect_timeout = opts.connect_timeout,
    deadline = opts.deadline,
    max_retries = opts.max_retries,
    retry_base_delay = opts.retry_base_delay,
    retry_max_delay = opts.retry_max_delay,
    retry_after_max = opts.retry_after_max,
    max_body = opts.max_body,
    keep_nulls = opts.keep_nulls,
    prefetch = opts.prefetch ~= false,
    compress = opts.compress ~= false,
    no_proxy = scheme == "http" and is_loopback(host),
    user_agent = opts.user_agent or user_agent(),
    cainfo = opts.cainfo,
    capath = opts.capath,
  }
  -- the key lives in the C object only: a dump of this table cannot show it
  return setmetatable({ _c = c, page_size = opts.page_size or MAX_PAGE, keep_nulls = opts.keep_nulls,
    policy = policy_of(opts) }, Client)
end

function Client:__tostring()
  return tostring(self._c)
end

local function check_run_id(fname, run_id)
  if type(run_id) ~= "string" or run_id == "" then
    usage(fname, 1, "run_id must be a non-empty string, got %s", run_id == "" and '""' or type(run_id))
  end
  -- "." and ".." are path segments of their own that any URL normalizer removes
  if run_id == "." or run_id == ".." then
    usage(fname, 1, "run_id cannot be %q", run_id)
  end
end

local CALL_RESULT_PARAMS = {
  include_agent_results = { is_boolean, "a boolean" },
  limit = { whole_in(1, MAX_PAGE), "a whole number from 1 to 100" },
  starting_after = { is_string, "a non-empty string" },
  ending_before = { is_string, "a non-empty string" },
}

local PAGING = {
  limit = { whole_in(1, MAX_PAGE), "a whole number from 1 to 100" },
  starting_after = { is_string, "a non-empty string" },
  ending_before = { is_string, "a non-empty string" },
}
local RUN_STATUS = { PENDING = true, QUEUED = true, RUNNING = true, COMPLETE = true, PARTIAL = true,
  FAILED = true, CANCELLED = true }
local TERMINAL = { COMPLETE = true, PARTIAL = true, FAILED = true, CANCELLED = true }
local RUN_FILTERS = {
  limit = PAGING.limit, starting_after = PAGING.starting_after, ending_before = PAGING.ending_before,
  eval_agent_id = { is_string, "a non-empty string" },
  workbench_setup_id = { is_string, "a non-empty string" },
  status = { function(v) return RUN_STATUS[v] == true end,
    "one of PENDING, QUEUED, RUNNING, COMPLETE, PARTIAL, FAILED, CANCELLED" },
  triggered_by = { function(v) return v == "manual" or v == "auto" or v == "backfill" end,
    '"manual", "auto" or "backfill"' },
}

-- A copy of params, checked against a table of allowed ones, with limit set when given;
-- or nil and what is wrong with them.
local function copy_params(params, allowed, limit)
  if params ~= nil and type(params) ~= "table" then
    return nil, format("params must be a table, got %s", type(params))
  end
  local out = { limit = limit }
  for k, v in pairs(params or {}) do
    local p = allowed[k]
    if not p then return nil, format("unknown parameter '%s'", tostring(k)) end
    if not p[1](v) then return nil, format("%s must be %s", k, p[2]) end
    out[k] = v
  end
  if out.starting_after and out.ending_before then
    return nil, "starting_after and ending_before cannot be combined"
  end
  return out
end

-- copy_params, raising a usage error naming fname's argument argn.
local function checked(fname, argn, params, allowed, limit)
  local out, msg = copy_params(params, allowed, limit)
  if not out then usage(fname, argn, "%s", msg) end
  return out
end

--- for result, page in client:call_results(run_id [, params]) do ... end
-- Follows next_cursor to the end; raises an error value on failure.
function Client:call_results(run_id, params)
  check_run_id("call_results", run_id)
  local p = checked("call_results", 2, params, CALL_RESULT_PARAMS, self.page_size)
  return self._c:_iter("call-results", run_id, p)
end

--- for snapshot, page in client:agent_snapshots(run_id) do ... end
function Client:agent_snapshots(run_id)
  check_run_id("agent_snapshots", run_id)
  return self._c:_iter("agent-snapshots", run_id)
end

--- client:call_results_page(run_id [, params]) -> page | nil, err
function Client:call_results_page(run_id, params)
  check_run_id("call_results_page", run_id)
  return self._c:_page("call-results", run_id, checked("call_results_page", 2, params, CALL_RESULT_PARAMS))
end

--- client:agent_snapshots_page(run_id) -> page | nil, err
function Client:agent_snapshots_page(run_id)
  check_run_id("agent_snapshots_page", run_id)
  return self._c:_page("agent-snapshots", run_id)
end

-- Several streams at once (blandeval.many): what each request may be.
local MANY_KINDS = {
  call_results = { "call-results", CALL_RESULT_PARAMS },
  agent_results = { "agent-results", PAGING },
  agent_snapshots = { "agent-snapshots", {} },
}

-- Checks the requests of many / call_results_many and returns them for blandeval.many.
-- what: how the caller's list is named in messages ("requests" or "run_ids").
local function check_many(fname, what, list, params, opts, page_size)
  if type(list) ~= "table" then usage(fname, 1, "%s must be a table, got %s", what, type(list)) end
  local n = 0
  for _ in pairs(list) do n = n + 1 end
  if n ~= #list then usage(fname, 1, "%s must be a list (keys 1..n)", what) end
  local out = {}
  for i, r in ipairs(list) do
    local kind, run_id, p, tag
    if what == "run_ids" then
      kind, run_id, p, tag = "call_results", r, params, r
    else
      if type(r) ~= "table" then usage(fname, 1, "requests[%d] must be a table, got %s", i, type(r)) end
      kind, run_id, p, tag = r[1], r[2], r[3], r.tag
      if not MANY_KINDS[kind] then
        usage(fname, 1, 'requests[%d][1] must be "call_results", "agent_results" or "agent_snapshots", got %s',
          i, type(kind) == "string" and format("%q", kind) or type(kind))
      end
      if tag == nil then tag = run_id end
    end
    if type(run_id) ~= "string" or run_id == "" or run_id == "." or run_id == ".." then
      usage(fname, 1, "%s[%d]%s must be a run id (a non-empty string other than . and ..), got %s", what, i,
        what == "run_ids" and "" or "[2]", type(run_id) == "string" and format("%q", run_id) or type(run_id))
    end
    local copy, msg = copy_params(p, MANY_KINDS[kind][2], kind ~= "agent_snapshots" and page_size or nil)
    if not copy then usage(fname, what == "run_ids" and 2 or 1, "%s", msg) end
    out[i] = { endpoint = MANY_KINDS[kind][1], run_id = run_id, params = copy, tag = tag }
  end
  local argn = what == "run_ids" and 3 or 2
  if opts ~= nil and type(opts) ~= "table" then usage(fname, argn, "opts must be a table, got %s", type(opts)) end
  for k, v in pairs(opts or {}) do
    if k ~= "concurrency" then usage(fname, argn, "unknown option '%s'", tostring(k)) end
    if not is_whole(v, 1, 16) then usage(fname, argn, "concurrency must be a whole number from 1 to 16") end
  end
  return out, opts or {}
end

--- for item, tag, page in client:many(requests [, opts]) do ... end
-- requests[i] = { "call_results" | "agent_results" | "agent_snapshots", run_id [, params],
-- tag = (default run_id) }; opts.concurrency: requests in flight at once (1..16, default 4).
-- The streams' pages travel together; items come as their pages arrive, each with its tag.
function Client:many(requests, opts)
  local list, o = check_many("many", "requests", requests, nil, opts, self.page_size)
  return many.iter(self, list, o)
end

--- for result, run_id, page in client:call_results_many(run_ids [, params [, opts]]) do ... end
function Client:call_results_many(run_ids, params, opts)
  local list, o = check_many("call_results_many", "run_ids", run_ids, params, opts, self.page_size)
  return many.iter(self, list, o)
end

--- for result, page in client:failed_call_results(run_id [, params]) do ... end
-- The call results with failed_agent_count > 0.
function Client:failed_call_results(run_id, params)
  check_run_id("failed_call_results", run_id)
  local p = checked("failed_call_results", 2, params, CALL_RESULT_PARAMS, self.page_size)
  local step, it, _, closing = self._c:_iter("call-results", run_id, p)
  return function()
    while true do
      local r, page = step(it)
      if r == nil then return nil end
      local failed = r.failed_agent_count          -- blandeval.null with keep_nulls
      if type(failed) == "number" and failed > 0 then return r, page end
    end
  end, it, nil, closing
end

--- client:run(run_id) -> run | nil, err: the eval run (status, counts, summary, ...)
function Client:run(run_id)
  check_run_id("run", run_id)
  return self._c:_page("run", run_id)
end

--- client:evals_status() -> { enabled, gate, reason } | nil, err
function Client:evals_status()
  return self._c:_page("status", nil)
end

--- for verdict, page in client:agent_results(run_id [, params]) do ... end
-- Every call x agent verdict of the run; params: limit, starting_after, ending_before.
function Client:agent_results(run_id, params)
  check_run_id("agent_results", run_id)
  return self._c:_iter("agent-results", run_id, checked("agent_results", 2, params, PAGING, self.page_size))
end

--- client:agent_results_page(run_id [, params]) -> page | nil, err
function Client:agent_results_page(run_id, params)
  check_run_id("agent_results_page", run_id)
  return self._c:_page("agent-results", run_id, checked("agent_results_page", 2, params, PAGING))
end

--- for run, page in client:runs([filters]) do ... end
-- filters: eval_agent_id, workbench_setup_id, status, triggered_by, limit, cursors.
function Client:runs(filters)
  return self._c:_iter("runs", nil, checked("runs", 1, filters, RUN_FILTERS, self.page_size))
end

--- client:runs_page([filters]) -> page | nil, err
function Client:runs_page(filters)
  return self._c:_page("runs", nil, checked("runs_page", 1, filters, RUN_FILTERS))
end

local WAIT_OPTIONS = {
  interval = { number_in(0, 3600), "a number of seconds >= 0" },
  max_interval = { number_in(0, 3600), "a number of seconds >= 0" },
  timeout = { number_in(0, 86400 * 7), "a number of seconds >= 0" },
  progress = { function(v) return type(v) == "function" end, "a function" },
}

local function monotonic()
  if ngx then ngx.update_time() return ngx.now() end
  return core.monotonic()
end

--- client:wait_for_run(run_id [, opts]) -> run | nil, err
-- Polls the run until its status is terminal (COMPLETE, PARTIAL, FAILED or
-- CANCELLED) and returns it; the wait between polls doubles from interval (2 s)
-- to max_interval (15 s); opts.progress(run) sees every poll; after timeout
-- seconds (3600) it gives up with a timeout error carrying the last run.
function Client:wait_for_run(run_id, opts)
  check_run_id("wait_for_run", run_id)
  local o = checked("wait_for_run", 2, opts, WAIT_OPTIONS)
  local wait, max_wait = o.interval or 2, o.max_interval or 15
  local give_up = monotonic() + (o.timeout or 3600)
  while true do
    local run, err = self:run(run_id)
    if not run then return nil, err end
    if o.progress then o.progress(run) end
    if TERMINAL[run.status] then return run end
    local now = monotonic()
    if now + wait > give_up then
      return nil, core.error { kind = "timeout", retryable = false, run = run,
        message = ("run %s is still %s after %d s"):format(run_id, tostring(run.status), o.timeout or 3600) }
    end
    if ngx then ngx.sleep(wait) else core.sleep(wait) end
    wait = math.min(wait * 2, max_wait)
  end
end

--- client:close(): releases the connection; the client cannot be used after.
function Client:close()
  self._c:close()
end
Client.__close = Client.close

-- the analyses over a run (verdicts joined to snapshots, summary, compare)
for name, f in pairs(require "blandeval.analysis") do Client[name] = f end

return Client
