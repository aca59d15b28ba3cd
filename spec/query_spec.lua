-- blandeval.query: chainable queries over iterators and arrays, and the call-result filters.
-- Plain arrays and hand-made iterators first, then the client's iterators against the fake
-- Bland API (spec/support/fakeapi), where the server's request counts show that :take and
-- :first stop the paging. Every expected value is computed here from the raw items.
-- Runs unchanged under Lua 5.4 and LuaJIT.
local query = require "blandeval.query"
local filters = query.filters
local fakeapi = require "fakeapi"
local transport = require "transport"

local NULL = require("blandeval.core").null
local IS_54 = _VERSION == "Lua 5.4" and not jit

local ids_of = transport.ids_of

-- A hand-made iterator over list, counting its calls and closes; the closing value has a
-- close method, like the client's iterators.
local function counted(list)
  local stats = { calls = 0, closes = 0, tbc = 0 }
  local i = 0
  -- closes: calls of close(); tbc: Lua 5.4's for loop closing its to-be-closed value
  local closing = setmetatable({ close = function() stats.closes = stats.closes + 1 end },
    { __close = function() stats.tbc = stats.tbc + 1 end })
  local function step()
    stats.calls = stats.calls + 1
    i = i + 1
    local v = list[i]
    if v == nil then return nil end
    return v, "extra" .. i
  end
  return stats, step, closing, closing
end

describe("blandeval.query on arrays", function()
  it("from(array) gives the array's items; collect, count, first", function()
    local a = { 10, 20, 30 }
    assert.are.same({ 10, 20, 30 }, query.from(a):collect())
    assert.are.equal(3, query.from(a):count())
    assert.are.equal(10, query.from(a):first())
    assert.are.same({}, query.from({}):collect())
    assert.are.equal(0, query.from({}):count())
    assert.is_nil(query.from({}):first())
    assert.is_not.equal(a, query.from(a):collect(), "collect makes a new array")
  end)

  it("counts are integers on Lua 5.4", function()
    if math.type then assert.are.equal("integer", math.type(query.from({ 1, 2 }):count())) end
  end)

  it("filter, map and take chain, in any order", function()
    local a = {}
    for i = 1, 20 do a[i] = i end
    local even = function(x) return x % 2 == 0 end
    local sq = function(x) return x * x end
    assert.are.same({ 4, 16, 36 }, query.from(a):filter(even):map(sq):take(3):collect())
    assert.are.same({ 4 }, query.from(a):take(3):filter(even):map(sq):collect())
    assert.are.same({ 1, 4, 9, 16 }, query.from(a):map(sq):take(4):collect())
    assert.are.equal(10, query.from(a):filter(even):count())
    assert.are.equal(2, query.from(a):filter(even):first())
    assert.are.equal(0, query.from(a):take(0):count())
    assert.are.equal(20, query.from(a):take(100):count())
    assert.are.equal(20, query.from(a):take(math.huge):count())
  end)

  it("a query is one iteration: once consumed it is empty", function()
    local q = query.from({ 1, 2, 3 })
    assert.are.same({ 1, 2, 3 }, q:collect())
    assert.are.same({}, q:collect())
    assert.are.equal(0, q:count())
  end)

  it("iter() drives a generic for, with the iterator's other values", function()
    local stats, f, s, closing = counted({ "a", "b", "c" })
    local seen = {}
    for v, extra in query(f, s, nil, closing):iter() do seen[#seen + 1] = v .. "/" .. extra end
    assert.are.same({ "a/extra1", "b/extra2", "c/extra3" }, seen)
    assert.are.equal(4, stats.calls, "three items and the end")
    assert.are.equal(0, stats.closes, "an iterator that reached its end is not closed again")
    assert.are.equal(IS_54 and 1 or 0, stats.tbc, "the for loop got the original closing value")
  end)

  it("filter predicates and map functions get every value of the item", function()
    local _, f, s, closing = counted({ "a", "b", "c" })
    local got = query(f, s, nil, closing)
      :filter(function(v, extra) return extra ~= "extra2" end)
      :map(function(v, extra) return v .. "=" .. extra, #v end)
      :collect()
    assert.are.same({ "a=extra1", "c=extra3" }, got)
    local _, f2, s2 = counted({ "x" })
    local v, extra = query(f2, s2):first()
    assert.are.equal("x", v)
    assert.are.equal("extra1", extra)
  end)

  it("iter() returns the underlying state and closing value", function()
    local _, f, s, closing = counted({ 1 })
    local step, state, control, cl = query(f, s, nil, closing):filter(function() return true end):iter()
    assert.is_function(step)
    assert.are.equal(s, state)
    assert.is_nil(control)
    assert.are.equal(closing, cl)
  end)

  it("take(n) closes the underlying iterator after the n-th item and asks it for nothing more", function()
    local stats, f, s, closing = counted({ 1, 2, 3, 4, 5 })
    local q = query(f, s, nil, closing):take(2)
    assert.are.same({ 1, 2 }, q:collect())
    assert.are.equal(2, stats.calls)
    assert.are.equal(1, stats.closes)
    assert.are.same({}, q:collect())
    assert.are.equal(2, stats.calls, "a closed source is never called again")
    assert.are.equal(1, stats.closes, "closed once")

    local stats0, f0, s0, c0 = counted({ 1, 2 })
    assert.are.same({}, query(f0, s0, nil, c0):take(0):collect())
    assert.are.equal(0, stats0.calls)
    assert.are.equal(1, stats0.closes)

    -- fewer items than n: the iterator ends by itself, nothing to close
    local stats3, f3, s3, c3 = counted({ 1, 2 })
    assert.are.same({ 1, 2 }, query(f3, s3, nil, c3):take(5):collect())
    assert.are.equal(3, stats3.calls)
    assert.are.equal(0, stats3.closes)
  end)

  it("take(n) in a generic for closes after the n-th item, before the loop asks again", function()
    local stats, f, s, closing = counted({ 1, 2, 3, 4 })
    local n = 0
    for _ in query(f, s, nil, closing):take(2):iter() do
      n = n + 1
      if n == 2 then assert.are.equal(1, stats.closes, "closed when the 2nd item came") end
    end
    assert.are.equal(2, n)
    assert.are.equal(2, stats.calls)
    assert.are.equal(1, stats.closes)
    assert.are.equal(IS_54 and 1 or 0, stats.tbc)
  end)

  it("first() closes the underlying iterator", function()
    local stats, f, s, closing = counted({ 1, 2, 3 })
    assert.are.equal(1, query(f, s, nil, closing):first())
    assert.are.equal(1, stats.calls)
    assert.are.equal(1, stats.closes)
  end)

  it("a closing value without a close method, or none, is fine", function()
    local _, f, s = counted({ 1, 2, 3 })
    assert.are.same({ 1 }, query(f, s, nil, {}):take(1):collect())
    local _, f2, s2 = counted({ 1, 2, 3 })
    assert.are.same({ 1 }, query(f2, s2, nil, nil):take(1):collect())
    local _, f3, s3 = counted({ 1, 2, 3 })
    assert.are.same({ 1 }, query(f3, s3, nil, NULL):take(1):collect())   -- a lightuserdata
  end)

  it("errors of the underlying iterator propagate unchanged", function()
    local boom = { kind = "network", message = "boom" }
    local n = 0
    local function f()
      n = n + 1
      if n == 3 then error(boom) end
      return n
    end
    local ok, err = pcall(function() return query(f):filter(function() return true end):collect() end)
    assert.is_false(ok)
    assert.are.equal(boom, err, "the same error value")

    n = 0
    ok, err = pcall(function() for _ in query(f):iter() do end end)
    assert.is_false(ok)
    assert.are.equal(boom, err)

    n = 0
    ok, err = pcall(function() return query(f):count() end)
    assert.are.equal(boom, err)
  end)

  it("an error in a predicate propagates unchanged and closes the underlying iterator", function()
    local stats, f, s, closing = counted({ 1, 2, 3 })
    local ok, err = pcall(function()
      return query(f, s, nil, closing):filter(function(v) if v == 2 then error("bad item 2") end return true end):collect()
    end)
    assert.is_false(ok)
    assert.matches("query_spec.lua:%d+: bad item 2$", err)
    assert.are.equal(1, stats.closes)
  end)

  it("map returning nil is an error naming the item", function()
    assert.has_error(function() query.from({ 1, 2 }):map(function(x) if x == 2 then return nil end return x end):collect() end,
      "blandeval.query: the map function returned nil for item 2")
  end)

  it("wrong arguments raise errors naming them", function()
    local q = query.from({})
    assert.has_error(function() query(nil) end, "bad argument #1 to 'query' (iterator function expected, got nil)")
    assert.has_error(function() query.from("x") end, "bad argument #1 to 'from' (table expected, got string)")
    assert.has_error(function() q:filter(1) end, "bad argument #1 to 'filter' (function expected, got number)")
    assert.has_error(function() q:map() end, "bad argument #1 to 'map' (function expected, got nil)")
    assert.has_error(function() q:take(-1) end, "bad argument #1 to 'take' (whole number >= 0 expected, got -1)")
    assert.has_error(function() q:take(1.5) end, "bad argument #1 to 'take' (whole number >= 0 expected, got 1.5)")
    assert.has_error(function() q:take("3") end, "bad argument #1 to 'take' (whole number >= 0 expected, got string)")
    local ok, err = pcall(function() q:take(-1) end)
    assert.is_false(ok)
    assert.matches("^[^:]*query_spec.lua:%d+: bad argument", err, "blames the caller")
  end)
end)

describe("blandeval.query.filters", function()
  -- every field a filter reads, missing (nil) and null (keep_nulls)
  local missing = {}
  local nulled = {
    failed_agent_count = NULL, insufficient_evidence_agent_count = NULL, status = NULL,
    overall_score_normalized_0_100 = NULL, call_ended_by = NULL, call_duration_seconds = NULL,
  }
  local function never(p)
    assert.is_false(p(missing), "nil fields")
    assert.is_false(p(nulled), "null fields")
    assert.is_false(p(nil), "no record")
    assert.is_false(p(NULL), "a null record")
  end

  it("failed: failed_agent_count > 0", function()
    assert.is_true(filters.failed({ failed_agent_count = 1 }))
    assert.is_true(filters.failed({ failed_agent_count = 3 }))
    assert.is_false(filters.failed({ failed_agent_count = 0 }))
    never(filters.failed)
  end)

  it("insufficient_evidence: the count > 0 or the status", function()
    local p = filters.insufficient_evidence
    assert.is_true(p({ insufficient_evidence_agent_count = 2 }))
    assert.is_true(p({ insufficient_evidence_agent_count = 0, status = "INSUFFICIENT_EVIDENCE" }))
    assert.is_true(p({ insufficient_evidence_agent_count = NULL, status = "INSUFFICIENT_EVIDENCE" }))
    assert.is_false(p({ insufficient_evidence_agent_count = 0, status = "COMPLETE" }))
    never(p)
  end)

  it("status(...): one of the statuses", function()
    local p = filters.status("FAILED", "RUNNING")
    assert.is_true(p({ status = "FAILED" }))
    assert.is_true(p({ status = "RUNNING" }))
    assert.is_false(p({ status = "COMPLETE" }))
    never(p)
  end)

  it("score_below and score_above are strict, and calls without a score never match", function()
    local below, above = filters.score_below(50), filters.score_above(50)
    assert.is_true(below({ overall_score_normalized_0_100 = 49.9 }))
    assert.is_false(below({ overall_score_normalized_0_100 = 50 }))
    assert.is_false(below({ overall_score_normalized_0_100 = 50.1 }))
    assert.is_true(above({ overall_score_normalized_0_100 = 50.1 }))
    assert.is_false(above({ overall_score_normalized_0_100 = 50.0 }))
    assert.is_true(below({ overall_score_normalized_0_100 = 0 }))
    assert.is_false(below({ overall_score_normalized_0_100 = "10" }), "not a number")
    never(below)
    never(above)
    never(filters.score_below(math.huge))
    never(filters.score_above(-math.huge))
  end)

  it("ended_by(who)", function()
    local p = filters.ended_by("customer")
    assert.is_true(p({ call_ended_by = "customer" }))
    assert.is_false(p({ call_ended_by = "agent" }))
    never(p)
    assert.is_true(filters.ended_by("agent", "customer")({ call_ended_by = "agent" }))
  end)

  it("duration_between(lo, hi) is inclusive", function()
    local p = filters.duration_between(60, 120)
    assert.is_true(p({ call_duration_seconds = 60 }))
    assert.is_true(p({ call_duration_seconds = 120.0 }))
    assert.is_true(p({ call_duration_seconds = 90.5 }))
    assert.is_false(p({ call_duration_seconds = 59.9 }))
    assert.is_false(p({ call_duration_seconds = 120.1 }))
    never(p)
    never(filters.duration_between(-math.huge, math.huge))
  end)

  it("all, any and negate combine predicates", function()
    local f, lo = filters.failed, filters.score_below(50)
    local r1 = { failed_agent_count = 1, overall_score_normalized_0_100 = 40 }
    local r2 = { failed_agent_count = 1, overall_score_normalized_0_100 = 60 }
    local r3 = { failed_agent_count = 0, overall_score_normalized_0_100 = NULL }
    assert.is_true(filters.all(f, lo)(r1))
    assert.is_false(filters.all(f, lo)(r2))
    assert.is_true(filters.any(f, lo)(r2))
    assert.is_false(filters.any(f, lo)(r3))
    assert.is_true(filters.negate(f)(r3))
    assert.is_false(filters.negate(f)(r1))
    assert.is_true(filters.negate(lo)(r3), "no score: score_below is false, its negation true")
    assert.is_true(filters.all()(r1))
    assert.is_false(filters.any()(r1))
    -- every value reaches the predicates
    local p = filters.all(function(_, page) return page == "p" end)
    assert.is_true(p(r1, "p"))
    assert.is_false(filters.negate(p)(r1, "p"))
  end)

  it("wrong arguments raise errors naming them", function()
    assert.has_error(function() filters.score_below("50") end, "bad argument #1 to 'score_below' (number expected, got string)")
    assert.has_error(function() filters.score_above(0 / 0) end, "bad argument #1 to 'score_above' (number expected, got nan)")
    assert.has_error(function() filters.status() end, "bad argument #1 to 'status' (at least one string expected)")
    assert.has_error(function() filters.status("A", 2) end, "bad argument #2 to 'status' (string expected, got number)")
    assert.has_error(function() filters.ended_by(nil) end, "bad argument #1 to 'ended_by' (string expected, got nil)")
    assert.has_error(function() filters.duration_between(1) end, "bad argument #2 to 'duration_between' (number expected, got nil)")
    assert.has_error(function() filters.duration_between(2, 1) end, "bad argument #2 to 'duration_between' (hi (1) is below lo (2))")
    assert.has_error(function() filters.all(filters.failed, "x") end, "bad argument #2 to 'all' (predicate function expected, got string)")
    assert.has_error(function() filters.any(1) end, "bad argument #1 to 'any' (predicate function expected, got number)")
    assert.has_error(function() filters.negate() end, "bad argument #1 to 'negate' (predicate function expected, got nil)")
    local ok, err = pcall(function() filters.score_below("50") end)
    assert.is_false(ok)
    assert.matches("^[^:]*query_spec.lua:%d+: bad argument", err, "blames the caller")
  end)
end)

describe("blandeval.query on the client's iterators", function()
  local api

  setup(function() api = fakeapi.start() end)
  teardown(function() if api then api.stop() end end)

  local function client(opts) return transport.client(api, opts) end

  -- every call result of a run, by a plain loop
  local function raw(run_id, opts)
    local out = {}
    for r in client(opts):call_results(run_id) do out[#out + 1] = r end
    return out
  end
  local function call_result_requests(run_id)
    local n = 0
    for _, p in ipairs(api.stats(run_id).paths) do
      if p:find("/call-results", 1, true) then n = n + 1 end
    end
    return n
  end

  it("query(client:call_results(...)) with filters matches a plain loop over the items", function()
    local items = raw("run-250", { page_size = 100 })
    assert.are.equal(250, #items)
    local want_failed, want_low, want_mix = {}, {}, {}
    for _, r in ipairs(items) do
      if r.failed_agent_count > 0 then want_failed[#want_failed + 1] = r.id end
      local s = r.overall_score_normalized_0_100
      if s ~= nil and s < 60 then want_low[#want_low + 1] = r.id end
      local d = r.call_duration_seconds
      if r.call_ended_by == "customer" and d ~= nil and d >= 100 and d <= 500 then
        want_mix[#want_mix + 1] = r.id
      end
    end
    assert.is_true(#want_failed > 0 and #want_low > 0 and #want_mix > 0, "the run has each kind")

    local c = client({ page_size = 100 })
    assert.are.same(want_failed, ids_of(query(c:call_results("run-250")):filter(filters.failed):collect()))
    assert.are.same(want_low, ids_of(query(c:call_results("run-250")):filter(filters.score_below(60)):collect()))
    assert.are.same(want_mix, ids_of(query(c:call_results("run-250"))
      :filter(filters.all(filters.ended_by("customer"), filters.duration_between(100, 500))):collect()))
    assert.are.equal(#want_failed, query(c:call_results("run-250")):filter(filters.failed):count())
    -- the page comes along as the second value
    local r, page = query(c:call_results("run-250")):filter(filters.failed):first()
    assert.are.equal(want_failed[1], r.id)
    assert.is_table(page)
    assert.are.equal(1, page.number)
  end)

  it("filters see blandeval.null with keep_nulls and give the same answers", function()
    local items = raw("run-250", { page_size = 100 })
    local c = client({ page_size = 100, keep_nulls = true })
    local preds = {
      failed = filters.failed, insufficient = filters.insufficient_evidence,
      below = filters.score_below(70), above = filters.score_above(70),
      customer = filters.ended_by("customer"), short = filters.duration_between(0, 200),
      done = filters.status("COMPLETE", "FAILED"),
    }
    local want = {}
    for _, r in ipairs(items) do
      local s, d, n = r.overall_score_normalized_0_100, r.call_duration_seconds, r.insufficient_evidence_agent_count
      local hit = {
        failed = r.failed_agent_count > 0,
        insufficient = n > 0 or r.status == "INSUFFICIENT_EVIDENCE",
        below = s ~= nil and s < 70, above = s ~= nil and s > 70,
        customer = r.call_ended_by == "customer", short = d ~= nil and d <= 200,
        done = r.status == "COMPLETE" or r.status == "FAILED",
      }
      for name, h in pairs(hit) do if h then want[name] = (want[name] or 0) + 1 end end
    end
    local nulls = 0
    for r in c:call_results("run-250") do
      if r.overall_score_normalized_0_100 == NULL then nulls = nulls + 1 end
    end
    assert.is_true(nulls > 0, "the run has calls without a score")
    for name, p in pairs(preds) do
      assert.are.equal(want[name] or 0, query(c:call_results("run-250")):filter(p):count(), name)
    end
  end)

  it("take(n) stops the paging: no page after the n-th item is requested", function()
    local c = client({ page_size = 100, prefetch = false })
    local items = raw("run-250", { page_size = 100 })

    api.reset()
    local f, s, ctl, closing = c:call_results("run-250")
    local got = query(f, s, ctl, closing):take(5):collect()
    assert.are.same(ids_of({ items[1], items[2], items[3], items[4], items[5] }), ids_of(got))
    assert.are.equal(1, call_result_requests("run-250"))
    local ok, err = pcall(f, s)
    assert.is_false(ok, "the underlying iterator is closed")
    assert.matches("closed", tostring(err))

    api.reset()
    assert.are.equal(100, query(c:call_results("run-250")):take(100):count())
    assert.are.equal(1, call_result_requests("run-250"), "the 100th item ends the first page: no second")

    api.reset()
    assert.are.equal(101, query(c:call_results("run-250")):take(101):count())
    assert.are.equal(2, call_result_requests("run-250"))

    api.reset()
    assert.are.equal(0, query(c:call_results("run-250")):take(0):count())
    assert.are.equal(0, call_result_requests("run-250"), "take(0) asks for nothing")
  end)

  it("take(n) after a filter, in a generic for: one page for the first few matches", function()
    local c = client({ page_size = 100, prefetch = false })
    local want = {}
    for _, r in ipairs(raw("run-250", { page_size = 100 })) do
      if r.failed_agent_count > 0 and #want < 3 then want[#want + 1] = r.id end
    end
    api.reset()
    local got = {}
    for r, page in query(c:call_results("run-250")):filter(filters.failed):take(3):iter() do
      got[#got + 1] = r.id
      assert.are.equal(1, page.number)
    end
    assert.are.same(want, got)
    assert.are.equal(1, call_result_requests("run-250"))
  end)

  it("first() requests one page and closes the iterator", function()
    local c = client({ page_size = 10, prefetch = false })
    local first_id = raw("run-250")[1].id
    api.reset()
    local f, s, ctl, closing = c:call_results("run-250")
    local r = query(f, s, ctl, closing):first()
    assert.are.equal(first_id, r.id)
    assert.are.equal(1, call_result_requests("run-250"))
    assert.has_error(function() f(s) end)
  end)

  it("on Lua 5.4, leaving a for over q:iter() closes the client's iterator", function()
    if not IS_54 then return end
    local c = client({ page_size = 10 })
    local f, s, ctl, closing = c:call_results("run-250")
    for _ in query(f, s, ctl, closing):filter(filters.negate(filters.failed)):iter() do break end
    local ok, err = pcall(f, s)
    assert.is_false(ok)
    assert.matches("closed", tostring(err))
  end)

  it("an error of the client's iterator reaches the caller unchanged", function()
    local c = client({ page_size = 25, max_retries = 0 })
    local ok, err = pcall(function()
      return query(c:call_results("fault-500-forever@q1")):filter(filters.failed):collect()
    end)
    assert.is_false(ok)
    assert.is_table(err, "the error value, not a message")
    assert.are.equal("api", err.kind)
    assert.are.equal(500, err.status)
    assert.is_string(err.starting_after, "the iterator's cursor to resume from")
    assert.matches("^blandeval: api error", tostring(err))

    ok, err = pcall(function() for _ in query(c:call_results("no-such-run")):iter() do end end)
    assert.is_false(ok)
    assert.are.equal("EVAL_RUN_NOT_FOUND", err.code)
  end)

  it("works with every iterator method: failed_call_results", function()
    local c = client({ page_size = 100 })
    local want = 0
    for _, r in ipairs(raw("run-250", { page_size = 100 })) do
      if r.failed_agent_count > 0 and r.status == "COMPLETE" then want = want + 1 end
    end
    assert.are.equal(want, query(c:failed_call_results("run-250")):filter(filters.status("COMPLETE")):count())
  end)
end)
