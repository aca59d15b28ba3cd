-- client:many and client:call_results_many: several runs (or endpoints) read together, at
-- most `concurrency` requests in flight, against the fake Bland API. Expectations come from
-- the single-run iterators; the bound on requests in flight is read at the server (its
-- max_in_flight for a slow run), not timed. Transport-neutral: runs inside nginx too.
local fakeapi = require "fakeapi"
local transport = require "transport"

local ids_of, fresh = transport.ids_of, transport.fresh
local IS_54 = _VERSION == "Lua 5.4" and not jit

describe("many", function()
  local api, client

  setup(function()
    math.randomseed(os.time())
    api = fakeapi.start()
    client = transport.client(api, { page_size = 10 })
  end)
  teardown(function()
    if client then client:close() end
    if api then api.stop() end
  end)

  local function single(method, run_id, params)
    local out = {}
    for r in client[method](client, run_id, params) do out[#out + 1] = r end
    return out
  end

  -- items by tag, in the order they came, and how many items and tags there were
  local function by_tag(f, s, c, cl)
    local out, n = {}, 0
    for item, tag, page in f, s, c, cl do
      assert.is_table(page)
      out[tag] = out[tag] or {}
      table.insert(out[tag], item)
      n = n + 1
    end
    return out, n
  end

  it("call_results_many: every run's items, in each run's order, tagged with its id", function()
    local runs = { "run-60", "run-45", "run-7", "run-0" }
    local got, n = by_tag(client:call_results_many(runs, { include_agent_results = true }))
    local total = 0
    for _, id in ipairs(runs) do
      local want = single("call_results", id, { include_agent_results = true })
      assert.are.same(want, got[id] or {}, id)
      total = total + #want
    end
    assert.are.equal(total, n)
  end)

  it("the pages of several runs interleave: no run waits for another to end", function()
    local before = nil           -- run-60 items read when run-45's first item came
    local n60 = 0
    for _, tag in client:call_results_many({ "run-60", "run-45" }) do
      if tag == "run-60" then n60 = n60 + 1 elseif before == nil then before = n60 end
    end
    assert.are.equal(60, n60)
    assert.is_true(before < 60, "run-45 came after all of run-60")
  end)

  it("several endpoints, with params and tags", function()
    local got = by_tag(client:many({
      { "agent_snapshots", "run-5" },
      { "agent_results", "run-20", { limit = 7 }, tag = "verdicts" },
      { "call_results", "run-20", { ending_before = single("call_results", "run-20")[20].id }, tag = "back" },
    }, { concurrency = 2 }))
    assert.are.same(ids_of(single("agent_snapshots", "run-5")), ids_of(got["run-5"]))
    assert.are.same(ids_of(single("agent_results", "run-20")), ids_of(got.verdicts))
    local fwd = ids_of(single("call_results", "run-20"))
    local back = ids_of(got.back)
    assert.are.equal(19, #back)
    for i = 1, 19 do assert.are.equal(fwd[20 - i], back[i]) end
  end)

  it("keeps at most `concurrency` requests in flight, and uses them", function()
    for _, k in ipairs { 1, 2, 4 } do
      local run_id = "slow150-20"
      api.reset()
      local list = {}
      for i = 1, 4 do list[i] = { "call_results", run_id, tag = i } end
      local n = 0
      for _ in client:many(list, { concurrency = k }) do n = n + 1 end
      assert.are.equal(80, n)
      local st = api.stats(run_id)
      assert.are.equal(4 * 2, st.requests, "2 pages per stream")
      assert.is_true(st.max_in_flight <= k, "at most " .. k .. " at once, saw " .. st.max_in_flight)
      if k > 1 then assert.is_true(st.max_in_flight >= 2, "several at once with " .. k) end
    end
  end)

  it("a failing stream raises its error with its tag and cursor; retries first", function()
    local bad = fresh("fault-500-forever")
    local ok, err = pcall(function()
      for _ in client:call_results_many({ "run-30", bad }) do end
    end)
    assert.is_false(ok)
    assert.are.equal(500, err.status)
    assert.are.equal(bad, err.tag)
    assert.are.equal(bad, err.run_id)
    assert.are.equal(3, err.attempts)
    assert.is_string(err.starting_after)
    local missing
    ok, missing = pcall(function() for _ in client:call_results_many({ "no-such-run" }) do end end)
    assert.is_false(ok)
    assert.are.equal(404, missing.status)
    assert.are.equal("no-such-run", missing.tag)
  end)

  it("a stream whose page failed once is retried; nothing is lost", function()
    local flaky = fresh("fault-503-once")
    local got = by_tag(client:call_results_many({ flaky, "run-20" }))
    assert.are.same(ids_of(single("call_results", fresh("fault-503-once"))), ids_of(got[flaky]))
    assert.are.equal(20, #got["run-20"])
  end)

  it("closing: a closed iteration raises 'closed'; an empty list ends at once", function()
    local f, s = client:call_results_many({ "run-60", "run-45" })
    assert.is_table((f(s)))
    s:close()
    local ok, err = pcall(f, s)
    assert.is_false(ok)
    assert.matches("closed", tostring(err))
    local n = 0
    for _ in client:call_results_many({}) do n = n + 1 end
    assert.are.equal(0, n)
    if IS_54 then
      local f2, s2, c2, cl2 = client:call_results_many({ "run-60" })
      for _ in f2, s2, c2, cl2 do break end
      assert.is_false((pcall(f2, s2)), "break closed it")
    end
    assert.are.equal(60, #single("call_results", "run-60"), "the client keeps working")
  end)

  it("a client closed mid-iteration: the next step raises 'closed', and so does every later one", function()
    local c = transport.client(api, { page_size = 10 })
    local f, s = c:call_results_many({ "run-60", "run-45" })
    assert.is_table((f(s)))
    c:close()
    local ok, err = pcall(function() while f(s) do end end)
    assert.is_false(ok)
    assert.matches("closed", tostring(err))
    local ok2, err2 = pcall(f, s)
    assert.is_false(ok2)
    assert.matches("closed", tostring(err2))
  end)

  it("a batch keeps its client in a table (LuaJIT's userdata environments must be tables) #curl", function()
    local b = client._c:_batch(1)
    local env = debug.getfenv and debug.getfenv(b) or debug.getuservalue(b)
    assert.are.equal("table", type(env))
    assert.is_true(rawequal(client._c, env[1]))
    b:close()
  end)

  it("bad arguments raise, naming them", function()
    local cases = {
      { function() client:call_results_many("run-1") end, "bad argument #1 to 'call_results_many' (run_ids must be a table, got string)" },
      { function() client:call_results_many({ "run-1", "" }) end, "bad argument #1 to 'call_results_many' (run_ids[2] must be a run id (a non-empty string other than . and ..), got \"\")" },
      { function() client:call_results_many({ "run-1" }, { limit = 0 }) end, "bad argument #2 to 'call_results_many' (limit must be a whole number from 1 to 100)" },
      { function() client:call_results_many({ "run-1" }, nil, { concurrency = 0 }) end, "bad argument #3 to 'call_results_many' (concurrency must be a whole number from 1 to 16)" },
      { function() client:call_results_many({ "run-1" }, nil, { workers = 2 }) end, "bad argument #3 to 'call_results_many' (unknown option 'workers')" },
      { function() client:many({ { "runs" } }) end, "bad argument #1 to 'many' (requests[1][1] must be \"call_results\", \"agent_results\" or \"agent_snapshots\", got \"runs\")" },
      { function() client:many({ { "call_results", ".." } }) end, "bad argument #1 to 'many' (requests[1][2] must be a run id (a non-empty string other than . and ..), got \"..\")" },
      { function() client:many({ { "agent_snapshots", "run-1", { limit = 5 } } }) end, "bad argument #1 to 'many' (unknown parameter 'limit')" },
      { function() client:many({ [2] = { "call_results", "run-1" } }) end, "bad argument #1 to 'many' (requests must be a list (keys 1..n))" },
      { function() client:many({ "run-1" }) end, "bad argument #1 to 'many' (requests[1] must be a table, got string)" },
    }
    for _, c in ipairs(cases) do assert.has_error(c[1], c[2]) end
  end)
end)
