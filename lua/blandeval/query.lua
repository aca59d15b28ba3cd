-- blandeval.query: chainable queries over the iterators of the client (or plain arrays),
-- and predicates over call results (blandeval.query.filters). Pure Lua, for Lua 5.4 and
-- LuaJIT 2.1.
--
--   local query, filters = require "blandeval.query", require("blandeval.query").filters
--   local worst = query(client:call_results(run_id))
--     :filter(filters.all(filters.failed, filters.score_below(50)))
--     :take(10)
--     :collect()
--   for r, page in query(client:call_results(run_id)):filter(filters.failed):iter() do ... end
--
-- A query is a view of one iteration: its items are pulled from the underlying iterator as
-- the query is consumed, once. Queries made from one another (q:filter(p), q:take(n), ...)
-- share that iteration, so consume only one of them. Items travel with the other values
-- the iterator gives (call_results: result, page; verdicts: result, verdicts, page): up to
-- four values per item reach predicates, map functions and the generic for.
--
-- Closing: when :take(n) has given its n-th item, and when :first() has its item, the
-- underlying iterator is closed at once (closing:close(), when the closing value has a
-- close method), so no further page is requested. :iter() hands the original closing
-- value to the for loop, so Lua 5.4 closes the iterator however the loop is left. The
-- terminal methods close it too when a predicate or map function raises. Errors raised by
-- the underlying iterator propagate unchanged (the same error value).

local type, error, pcall, select, setmetatable, getmetatable, tostring =
  type, error, pcall, select, setmetatable, getmetatable, tostring
local floor, huge = math.floor, math.huge
local format = string.format

local M = {}

local Query = {}
Query.__index = Query

local function is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

-- Raises a usage error at the caller of the public function: level 4 through bad() from
-- the public function, or directly from a helper the public function calls.
local function bad_at(level, argn, fname, fmt, ...)
  error(format("bad argument #%d to '%s' (%s)", argn, fname, format(fmt, ...)), level)
end
local function bad(argn, fname, fmt, ...) bad_at(4, argn, fname, fmt, ...) end

-- Calls closing:close() when the closing value has one; a userdata without fields must
-- not make closing fail, hence the pcall around the lookup only.
local function close_value(closing)
  if closing == nil or closing == false then return end
  local ok, close = pcall(function() return closing.close end)
  if ok and is_callable(close) then close(closing) end
end

-- The source: the underlying iteration, shared by every query derived from it.
local function new_source(f, s, c, closing)
  local src = { done = false, state = s, closing = closing }
  local control = c
  function src.pull()
    if src.done then return nil end
    local a, b, d, e = f(s, control)
    if a == nil then
      src.done = true
      return nil
    end
    control = a
    return a, b, d, e
  end
  function src.close()
    if src.done then return end
    src.done = true
    close_value(closing)
  end
  return src
end

local function new_query(src, pull)
  return setmetatable({ _src = src, _pull = pull }, Query)
end

--- query(f, s, c, closing) -> query: the four values an iterator method returns.
function M.query(f, s, c, closing)
  if not is_callable(f) then
    bad(1, "query", "iterator function expected, got %s", type(f))
  end
  local src = new_source(f, s, c, closing)
  return new_query(src, src.pull)
end

--- query.from(array) -> query over array[1..#array] (the length is taken now).
function M.from(array)
  if type(array) ~= "table" then bad(1, "from", "table expected, got %s", type(array)) end
  local n, i = #array, 0
  local src = new_source(function()
    if i >= n then return nil end
    i = i + 1
    return array[i]
  end, nil, nil, nil)
  return new_query(src, src.pull)
end

--- q:filter(pred) -> query of the items for which pred(item, ...) is true
function Query:filter(pred)
  if not is_callable(pred) then bad(1, "filter", "function expected, got %s", type(pred)) end
  local pull = self._pull
  return new_query(self._src, function()
    while true do
      local a, b, c, d = pull()
      if a == nil then return nil end
      if pred(a, b, c, d) then return a, b, c, d end
    end
  end)
end

--- q:map(fn) -> query of fn(item, ...) (its values replace the item's; the first must
-- not be nil)
function Query:map(fn)
  if not is_callable(fn) then bad(1, "map", "function expected, got %s", type(fn)) end
  local pull, n = self._pull, 0
  return new_query(self._src, function()
    local a, b, c, d = pull()
    if a == nil then return nil end
    n = n + 1
    local x, y, z, w = fn(a, b, c, d)
    if x == nil then
      error(format("blandeval.query: the map function returned nil for item %d", n), 0)
    end
    return x, y, z, w
  end)
end

--- q:take(n) -> query of the first n items; the underlying iterator is closed after the
-- n-th (at once for n = 0), so no page beyond it is requested.
function Query:take(n)
  if type(n) ~= "number" or n ~= n or n < 0 or (n ~= huge and floor(n) ~= n) then
    bad(1, "take", "whole number >= 0 expected, got %s", type(n) == "number" and tostring(n) or type(n))
  end
  local pull, src, taken = self._pull, self._src, 0
  return new_query(src, function()
    if taken >= n then
      src.close()
      return nil
    end
    local a, b, c, d = pull()
    if a == nil then return nil end
    taken = taken + 1
    if taken >= n then src.close() end
    return a, b, c, d
  end)
end

--- for item, ... in q:iter() do ... end: (step, state, nil, closing), where state and
-- closing are the underlying iterator's, so iterator:close() on state and Lua 5.4's
-- to-be-closed handling work as with the iterator itself.
function Query:iter()
  local pull = self._pull
  return function() return pull() end, self._src.state, nil, self._src.closing
end

-- Runs fn(pull) and closes the source if it raises; the error value is raised unchanged.
local function guarded(self, fn)
  local src = self._src
  local function finish(ok, ...)
    if not ok then
      src.close()
      error((...), 0)
    end
    return ...
  end
  return finish(pcall(fn, self._pull))
end

--- q:collect() -> array of the items (first values)
function Query:collect()
  return guarded(self, function(pull)
    local out, n = {}, 0
    while true do
      local a = pull()
      if a == nil then return out end
      n = n + 1
      out[n] = a
    end
  end)
end

--- q:count() -> number of items
function Query:count()
  return guarded(self, function(pull)
    local n = 0
    while pull() ~= nil do n = n + 1 end
    return n
  end)
end

--- q:first() -> the first item and its other values, or nil; closes the underlying iterator
function Query:first()
  local src = self._src
  return guarded(self, function(pull)
    local a, b, c, d = pull()
    src.close()
    return a, b, c, d
  end)
end

Query.__name = "blandeval.query"
function Query:__tostring() return "blandeval.query" end

---------------------------------------------------------------------------------------------
-- Predicates over call results (EvalRunCallResult). A field that is absent or
-- blandeval.null (keep_nulls = true) is missing: it never matches, and never raises.

local filters = {}
M.filters = filters

local function number_of(v) if type(v) == "number" and v == v then return v end end
local function string_of(v) if type(v) == "string" then return v end end
local function record(r) return type(r) == "table" and r or nil end

--- filters.failed(r): failed_agent_count > 0
function filters.failed(r)
  r = record(r)
  local n = r and number_of(r.failed_agent_count)
  return n ~= nil and n > 0
end

--- filters.insufficient_evidence(r): insufficient_evidence_agent_count > 0, or status
-- INSUFFICIENT_EVIDENCE
function filters.insufficient_evidence(r)
  r = record(r)
  if not r then return false end
  local n = number_of(r.insufficient_evidence_agent_count)
  return (n ~= nil and n > 0) or r.status == "INSUFFICIENT_EVIDENCE"
end

local function set_of(fname, ...)
  local n = select("#", ...)
  if n == 0 then bad_at(4, 1, fname, "at least one string expected") end
  local set = {}
  for i = 1, n do
    local v = select(i, ...)
    if type(v) ~= "string" then bad_at(4, i, fname, "string expected, got %s", type(v)) end
    set[v] = true
  end
  return set
end

--- filters.status(s1, s2, ...): status is one of them
function filters.status(...)
  local set = set_of("status", ...)
  return function(r)
    r = record(r)
    local s = r and string_of(r.status)
    return s ~= nil and set[s] == true
  end
end

local function check_number(fname, argn, x)
  if type(x) ~= "number" or x ~= x then
    bad_at(4, argn, fname, "number expected, got %s", type(x) == "number" and "nan" or type(x))
  end
end

--- filters.score_below(x): overall_score_normalized_0_100 < x (no score: no match)
function filters.score_below(x)
  check_number("score_below", 1, x)
  return function(r)
    r = record(r)
    local s = r and number_of(r.overall_score_normalized_0_100)
    return s ~= nil and s < x
  end
end

--- filters.score_above(x): overall_score_normalized_0_100 > x (no score: no match)
function filters.score_above(x)
  check_number("score_above", 1, x)
  return function(r)
    r = record(r)
    local s = r and number_of(r.overall_score_normalized_0_100)
    return s ~= nil and s > x
  end
end

--- filters.ended_by(who, ...): call_ended_by is who (or one of the names given)
function filters.ended_by(...)
  local set = set_of("ended_by", ...)
  return function(r)
    r = record(r)
    local who = r and string_of(r.call_ended_by)
    return who ~= nil and set[who] == true
  end
end

--- filters.duration_between(lo, hi): lo <= call_duration_seconds <= hi
function filters.duration_between(lo, hi)
  check_number("duration_between", 1, lo)
  check_number("duration_between", 2, hi)
  if lo > hi then bad(2, "duration_between", "hi (%s) is below lo (%s)", tostring(hi), tostring(lo)) end
  return function(r)
    r = record(r)
    local d = r and number_of(r.call_duration_seconds)
    return d ~= nil and d >= lo and d <= hi
  end
end

local function predicates(fname, ...)
  local n, list = select("#", ...), {}
  for i = 1, n do
    local p = select(i, ...)
    if not is_callable(p) then bad_at(4, i, fname, "predicate function expected, got %s", type(p)) end
    list[i] = p
  end
  return list, n
end

--- filters.all(p1, p2, ...): every predicate holds (true for none)
function filters.all(...)
  local list, n = predicates("all", ...)
  return function(...)
    for i = 1, n do
      if not list[i](...) then return false end
    end
    return true
  end
end

--- filters.any(p1, p2, ...): some predicate holds (false for none)
function filters.any(...)
  local list, n = predicates("any", ...)
  return function(...)
    for i = 1, n do
      if list[i](...) then return true end
    end
    return false
  end
end

--- filters.negate(p): p does not hold
function filters.negate(p)
  if not is_callable(p) then bad(1, "negate", "predicate function expected, got %s", type(p)) end
  return function(...) return not p(...) end
end

-- require("blandeval.query")(f, s, c, closing) is query.query(...)
return setmetatable(M, { __call = function(_, ...) return M.query(...) end })
