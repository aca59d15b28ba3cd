-- blandeval.ngx: the transport inside nginx (OpenResty or Debian's Lua module).
--
-- libcurl would block the worker, so here the requests are subrequests
-- (ngx.location.capture) to an internal location the user declares, which
-- proxy_passes to the API: nginx's proxy module brings HTTP/1.1, TLS with
-- verification, upstream keep-alive and timeouts, and the coroutine yields
-- while it works. The same C pager builds each request and reads each
-- response; backoff waits are ngx.sleep.
local core = require "blandeval.core"

local ngx = ngx
local setmetatable, error, type, pairs, tonumber = setmetatable, error, type, pairs, tonumber
local random, max = math.random, math.max

local Backend = {}
Backend.__index = Backend

-- keys live here, not in the backend's fields, so that no dump of a client shows them
local keys = setmetatable({}, { __mode = "k" })

-- Phases where subrequests can be made (lua-nginx-module: ngx.location.capture).
local CAPTURE_PHASES = { rewrite = true, access = true, content = true }

--- Backend.new(opts): opts as checked by blandeval.client, plus location.
function Backend.new(opts)
  local b = setmetatable({
    location = opts.location,
    keep_nulls = opts.keep_nulls or false,
    deadline = opts.deadline,
    policy = {
      max_retries = opts.max_retries or 2,
      base = opts.retry_base_delay or 0.5,
      max = opts.retry_max_delay or 8,
      after_max = opts.retry_after_max or 60,
    },
    closed = false,
  }, Backend)
  keys[b] = opts.api_key
  return b
end

function Backend:__tostring()
  if self.closed then return "blandeval.client (closed)" end
  return "blandeval.client (ngx transport via " .. self.location .. ")"
end

local function header(h, name)
  local v = h[name]
  if v == nil then
    for k, x in pairs(h) do
      if type(k) == "string" and k:lower() == name then v = x break end
    end
  end
  if type(v) == "table" then v = v[1] end
  return v
end

local function check_phase()
  local phase = ngx.get_phase()
  if not CAPTURE_PHASES[phase] then
    error(("blandeval: the ngx transport needs a request phase with subrequests (rewrite, "
      .. "access or content), not %q: make the call from a handler"):format(phase), 0)
  end
end

-- The subrequest for the pager's next page: location, options.
local function subrequest(self, pager)
  local url = pager:url("")
  local path, args = url:match("^([^?]*)%??(.*)$")
  return self.location, {
    method = ngx.HTTP_GET,
    args = args,
    vars = { blandeval_path = path, blandeval_key = keys[self] },
  }
end

-- One attempt: that subrequest, made.
local function capture(self, pager)
  return ngx.location.capture(subrequest(self, pager))
end

-- What an attempt's answer gives: page, or nil, err, retry_after (seconds or nil).
local function answer(self, res, pager, seen)
  local key = keys[self]
  local h = res.header or {}
  local meta = { seen = seen, secret = (key:gsub("^[Bb]earer ", "")) }
  meta.request_id = header(h, "x-request-id") or header(h, "request-id")
  meta.content_type = header(h, "content-type")
  local page, err
  -- When the API could not be reached or did not answer in time, nginx ends the subrequest
  -- with its own 502 or 504 and no body, flagged truncated: that is nginx's answer (an http
  -- error), not a body cut short.
  local own_answer = (res.status == 502 or res.status == 504) and (res.body or "") == ""
  if res.truncated and not own_answer then
    err = core.error({ kind = "network", message = "the response was cut short", retryable = true,
      status = res.status, request_id = meta.request_id }, meta.secret)
  else
    page, err = pager:response(res.status, res.body or "", meta)
  end
  if page then return page end
  -- Retry-After: seconds or an HTTP date; 0 or none leaves the backoff (as libcurl does)
  local ra = header(h, "retry-after")
  local retry_after = ra and (tonumber(ra) or (ngx.parse_http_time(ra) and ngx.parse_http_time(ra) - ngx.time()))
  if retry_after and retry_after <= 0 then retry_after = nil end
  return nil, err, retry_after
end

-- Gets the pager's next page, retrying as the policy allows: page, or nil, err.
local function fetch(self, pager, seen)
  check_phase()
  local deadline_at = self.deadline and ngx.now() + self.deadline
  local attempt = 0
  while true do
    attempt = attempt + 1
    local page, err, retry_after = answer(self, capture(self, pager), pager, seen)
    if page then return page end
    err.attempts = attempt
    if not err.retryable then return nil, err end
    local left
    if deadline_at then left = max(0, deadline_at - ngx.now()) end
    local wait = core.retry_wait(self.policy, attempt, retry_after, left, random())
    if not wait then
      if attempt <= self.policy.max_retries and deadline_at then err.deadline_exceeded = true end
      return nil, err
    end
    ngx.sleep(wait)
  end
end

local function check_open(self)
  if self.closed then error("blandeval: the client is closed", 3) end
end

--- The one-page call: page or nil, err.
function Backend:_page(endpoint, run_id, params)
  check_open(self)
  return fetch(self, core.pager(endpoint, run_id, params, self.keep_nulls), nil)
end

local Iter = {}
Iter.__index = Iter
function Iter:close()
  self.state = "closed"
  self.items, self.page, self.pager, self.seen, self.err = nil, nil, nil, nil, nil
end
Iter.__close = Iter.close

-- Raises err with the cursor of the page that could not be had (to resume from),
-- and keeps it: the iterator raises it again if called again.
local function fail(it, err)
  local cursor, backward = it.pager:cursor()
  if cursor then err[backward and "ending_before" or "starting_after"] = cursor end
  it.state, it.err = "failed", err
  it.items, it.page, it.pager, it.seen = nil, nil, nil, nil
  error(err, 0)
end

local function step(it)
  if it.state == "closed" then error("blandeval: the iterator is closed", 2) end
  if it.state == "done" then return nil end
  if it.state == "failed" then error(it.err, 0) end
  local empty = 0
  while it.idx >= it.n do
    if it.pager:done() then
      it.state = "done"
      it.items, it.page, it.pager, it.seen = nil, nil, nil, nil
      return nil
    end
    check_open(it.backend)
    local page, err = fetch(it.backend, it.pager, it.seen)
    if not page then fail(it, err) end
    it.page, it.items, it.n, it.idx = page, page.data, #page.data, 0
    if it.n == 0 and not it.pager:done() then
      empty = empty + 1
      if empty > 16 then
        fail(it, core.error { kind = "protocol", message = "too many empty pages in a row", retryable = false })
      end
    end
  end
  it.idx = it.idx + 1
  local i = it.backward and it.n - it.idx + 1 or it.idx
  return it.items[i], it.page
end

--- The iterator: step, state, nil, closing value (as the C one).
function Backend:_iter(endpoint, run_id, params)
  check_open(self)
  local it = setmetatable({
    backend = self, pager = core.pager(endpoint, run_id, params, self.keep_nulls), seen = {},
    idx = 0, n = 0, state = "open",
  }, Iter)
  it.backward = select(2, it.pager:cursor())
  return step, it, nil, it
end

-- A batch (see blandeval.many). The requests of a wait go out together as one
-- ngx.location.capture_multi: nginx runs them concurrently and the coroutine yields
-- until all have come back. (Light threads would let each answer be taken as it comes,
-- but a thread with a subrequest pending can be neither killed nor left behind.)
local Batch = {}
Batch.__index = Batch

function Backend:_batch(n)
  check_open(self)
  check_phase()
  return setmetatable({ backend = self, n = n, queued = {}, answers = {} }, Batch)
end

function Batch:start(i, pager)
  check_open(self.backend)
  self.answers[i] = nil
  self.queued[#self.queued + 1] = { i, { subrequest(self.backend, pager) } }
  return true
end

-- the lowest slot with an answer waiting, or nil
local function answered(self)
  local first
  for i in pairs(self.answers) do
    if not first or i < first then first = i end
  end
  return first
end

function Batch:wait(seconds)
  check_open(self.backend)
  local i = answered(self)
  if i then return i end
  local queued = self.queued
  if #queued == 0 then
    if seconds > 0.001 then ngx.sleep(seconds) end
    return nil
  end
  self.queued = {}
  local reqs = {}
  for k, q in ipairs(queued) do reqs[k] = q[2] end
  local results = { ngx.location.capture_multi(reqs) }
  for k, q in ipairs(queued) do self.answers[q[1]] = results[k] end
  return answered(self)
end

function Batch:response(i, pager, seen)
  local res = self.answers[i]
  self.answers[i] = nil
  return answer(self.backend, res, pager, seen)
end

function Batch:abort(i)
  self.answers[i] = nil
  for k = #self.queued, 1, -1 do
    if self.queued[k][1] == i then table.remove(self.queued, k) end
  end
end

function Batch:close()
  self.queued, self.answers = {}, {}
end

function Backend:close()
  self.closed = true
end

return Backend
