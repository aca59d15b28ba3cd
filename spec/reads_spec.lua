-- The reads besides call results and snapshots: run, evals_status, agent_results (iterator
-- and page), runs (iterator, page and filters) and wait_for_run, against the fake Bland API.
-- Expectations come from the other endpoints of the same run (the agent results embedded in
-- the call results, the runs list without filters) or from the fake's documented rules
-- (spec/support/fakeapi/handler.lua). Transport-neutral: runs under Lua 5.4, LuaJIT and,
-- with the ngx transport, inside nginx.
local fakeapi = require "fakeapi"
local transport = require "transport"

local ids_of, fresh = transport.ids_of, transport.fresh

local function collect(f, s, c, closing)
  local out, pages = {}, {}
  for item, page in f, s, c, closing do
    out[#out + 1] = item
    if pages[#pages] ~= page then pages[#pages + 1] = page end
  end
  return out, pages
end

describe("reads", function()
  local api, client

  setup(function()
    math.randomseed(os.time())
    api = fakeapi.start()
    client = transport.client(api)
  end)
  teardown(function()
    if client then client:close() end
    if api then api.stop() end
  end)

  -- the agent results embedded in the call results, flattened in call then agent order
  local function embedded(run_id)
    local out = {}
    for r in client:call_results(run_id, { include_agent_results = true }) do
      for _, v in ipairs(r.agent_results) do out[#out + 1] = v end
    end
    return out
  end

  describe("run", function()
    it("the EvalRun, consistent with its call results and agent results", function()
      local run = assert(client:run("run-60"))
      assert.are.equal("run-60", run.id)
      assert.are.equal("COMPLETE", run.status)
      local calls = collect(client:call_results("run-60"))
      assert.are.equal(#calls, run.resolved_call_count)
      assert.are.equal(#collect(client:agent_results("run-60")), run.completed_atom_count)
      assert.are.equal(3 * #calls, run.resolved_atom_count)
      local complete, failed = 0, 0
      for _, c in ipairs(calls) do
        if c.status == "COMPLETE" then complete = complete + 1 end
        if c.status == "FAILED" then failed = failed + 1 end
      end
      assert.are.equal(complete, run.summary.successful_call_count)
      assert.are.equal(failed, run.summary.failed_call_count)
    end)

    it("each fixed status as the run's status; no summary before the run ends", function()
      for id, status in pairs { ["pending-5"] = "PENDING", ["running-5"] = "RUNNING", ["partial-5"] = "PARTIAL",
        ["failed-5"] = "FAILED", ["cancelled-5"] = "CANCELLED" } do
        local run = assert(client:run(id))
        assert.are.equal(status, run.status, id)
        if status == "PENDING" or status == "RUNNING" then assert.is_nil(run.summary, id) end
        if status == "PARTIAL" then assert.is_table(run.summary, id) end
      end
    end)

    it("an unknown run: nil and the API's 404 error; a bad run id raises", function()
      local run, err = client:run("no-such-run")
      assert.is_nil(run)
      assert.are.equal("api", err.kind)
      assert.are.equal(404, err.status)
      assert.are.equal("EVAL_RUN_NOT_FOUND", err.code)
      assert.has_error(function() client:run("") end)
      assert.has_error(function() client:run(42) end)
      local ok, msg = pcall(client.run, client, "..")
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'run'", msg)
    end)
  end)

  it("evals_status: enabled, its gate, no reason", function()
    local st = assert(client:evals_status())
    assert.is_true(st.enabled)
    assert.are.equal("evals_enabled", st.gate)
    assert.is_nil(st.reason)
  end)

  describe("agent_results", function()
    it("every verdict of the run, the embedded ones in the same order, on pages of any size", function()
      local want = ids_of(embedded("run-45"))
      assert.is_true(#want > 100)
      for _, limit in ipairs { 1, 7, 100 } do
        local got, pages = collect(client:agent_results("run-45", { limit = limit }))
        assert.are.same(want, ids_of(got), "limit " .. limit)
        assert.are.equal(math.ceil(#want / limit), #pages, "limit " .. limit)
      end
    end)

    it("a page, resumed after its cursor, and walked backward", function()
      local want = ids_of(embedded("run-20"))
      local page = assert(client:agent_results_page("run-20", { limit = 10 }))
      assert.are.equal(10, #page.data)
      assert.is_true(page.has_more)
      assert.are.equal(want[10], page.next_cursor)
      local rest = ids_of(collect(client:agent_results("run-20", { starting_after = page.next_cursor })))
      local expect = {}
      for i = 11, #want do expect[#expect + 1] = want[i] end
      assert.are.same(expect, rest)
      local back = ids_of(collect(client:agent_results("run-20", { ending_before = want[31], limit = 4 })))
      local before = {}
      for i = 30, 1, -1 do before[#before + 1] = want[i] end
      assert.are.same(before, back)
    end)

    it("bad parameters raise, naming them", function()
      assert.has_error(function() client:agent_results("run-3", { include_agent_results = true }) end,
        "bad argument #2 to 'agent_results' (unknown parameter 'include_agent_results')")
      assert.has_error(function() client:agent_results_page("run-3", { limit = 0 }) end,
        "bad argument #2 to 'agent_results_page' (limit must be a whole number from 1 to 100)")
      local ok, err = pcall(function() for _ in client:agent_results("no-such-run") do end end)
      assert.is_false(ok)
      assert.are.equal(404, err.status)
    end)
  end)

  describe("runs", function()
    it("every run, newest first, the same on pages of any size", function()
      local all = collect(client:runs())
      assert.is_true(#all >= 10)
      for i = 2, #all do
        assert.is_true(all[i - 1].created_at >= all[i].created_at, all[i].id)
      end
      local small, pages = collect(client:runs { limit = 3 })
      assert.are.same(ids_of(all), ids_of(small))
      assert.are.equal(math.ceil(#all / 3), #pages)
      local page = assert(client:runs_page { limit = 2 })
      assert.are.same({ all[1].id, all[2].id }, ids_of(page.data))
      local rest = collect(client:runs { starting_after = page.next_cursor })
      assert.are.equal(#all - 2, #rest)
      assert.are.equal(all[3].id, rest[1].id)
    end)

    it("filters: status and triggered_by select the matching runs of the whole list", function()
      local all = collect(client:runs())
      local seen = 0
      for _, status in ipairs { "COMPLETE", "RUNNING", "FAILED" } do
        for _, by in ipairs { "manual", "auto", "backfill" } do
          local want = {}
          for _, r in ipairs(all) do
            if r.status == status and r.triggered_by == by then want[#want + 1] = r.id end
          end
          seen = seen + #want
          assert.are.same(want, ids_of(collect(client:runs { status = status, triggered_by = by })),
            status .. " " .. by)
        end
      end
      assert.is_true(seen > 0)
      -- eval_agent_id: the runs that have a snapshot of that agent
      local agent = assert(collect(client:agent_snapshots(all[1].id))[1]).eval_agent_id
      local with_agent = ids_of(collect(client:runs { eval_agent_id = agent }))
      assert.are.equal(all[1].id, with_agent[1])
      for _, id in ipairs(with_agent) do
        local has = false
        for s in client:agent_snapshots(id) do has = has or s.eval_agent_id == agent end
        assert.is_true(has, id)
      end
      -- workbench_setup_id: a field of the list items
      local setup_id, want = all[1].workbench_setup_id, {}
      for _, r in ipairs(all) do
        if r.workbench_setup_id == setup_id then want[#want + 1] = r.id end
      end
      assert.are.same(want, ids_of(collect(client:runs { workbench_setup_id = setup_id })))
      assert.are.same({}, collect(client:runs { workbench_setup_id = "no-such-setup" }))
    end)

    it("bad filters raise, naming them", function()
      assert.has_error(function() client:runs { status = "DONE" } end,
        "bad argument #1 to 'runs' (status must be one of PENDING, QUEUED, RUNNING, COMPLETE, PARTIAL, FAILED, CANCELLED)")
      assert.has_error(function() client:runs { triggered_by = "cron" } end,
        'bad argument #1 to \'runs\' (triggered_by must be "manual", "auto" or "backfill")')
      assert.has_error(function() client:runs_page { run_id = "x" } end,
        "bad argument #1 to 'runs_page' (unknown parameter 'run_id')")
      assert.has_error(function() client:runs("COMPLETE") end,
        "bad argument #1 to 'runs' (params must be a table, got string)")
    end)
  end)

  describe("wait_for_run", function()
    it("polls until the run ends and returns it; progress sees every poll", function()
      local id = fresh("progress-30")
      local seen = {}
      local run = assert(client:wait_for_run(id, { interval = 0, progress = function(r)
        seen[#seen + 1] = r.status .. " " .. r.completed_atom_count
      end }))
      assert.are.equal("COMPLETE", run.status)
      assert.are.same({ "PENDING 0", "QUEUED 0", "RUNNING 30", "RUNNING 60", "COMPLETE 90" }, seen)
      assert.are.equal(5, api.stats(id).requests)
    end)

    it("a run that ends FAILED or CANCELLED is returned, not an error", function()
      local failed = assert(client:wait_for_run(fresh("progress-fail-9"), { interval = 0 }))
      assert.are.equal("FAILED", failed.status)
      assert.are.equal("JUDGE_PROVIDER_UNAVAILABLE", failed.error_code)
      local cancelled = assert(client:wait_for_run(fresh("progress-cancel-9"), { interval = 0 }))
      assert.are.equal("CANCELLED", cancelled.status)
      local partial = assert(client:wait_for_run("partial-9"))
      assert.are.equal("PARTIAL", partial.status)
    end)

    it("gives up after timeout with a timeout error carrying the last run", function()
      local id = fresh("progress-12")
      local run, err = client:wait_for_run(id, { timeout = 0, interval = 1 })
      assert.is_nil(run)
      assert.are.equal("timeout", err.kind)
      assert.is_false(err.retryable)
      assert.are.equal("PENDING", err.run.status)
      assert.matches("still PENDING", tostring(err))
      assert.are.equal(1, api.stats(id).requests)
    end)

    it("an API error ends the wait with it; bad options raise, naming them", function()
      local run, err = client:wait_for_run("no-such-run", { interval = 0 })
      assert.is_nil(run)
      assert.are.equal(404, err.status)
      assert.has_error(function() client:wait_for_run("run-3", { interval = -1 }) end,
        "bad argument #2 to 'wait_for_run' (interval must be a number of seconds >= 0)")
      assert.has_error(function() client:wait_for_run("run-3", { progress = true }) end,
        "bad argument #2 to 'wait_for_run' (progress must be a function)")
      assert.has_error(function() client:wait_for_run("run-3", { every = 1 }) end,
        "bad argument #2 to 'wait_for_run' (unknown parameter 'every')")
    end)
  end)
end)
