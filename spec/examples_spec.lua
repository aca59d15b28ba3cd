-- The examples as a user runs them: examples/demo.sh (what `make demo` runs) and
-- examples/failed_calls.lua, as real processes against the fake API. Expected figures come
-- from walking the same runs with the library here.
local blandeval = require "blandeval"
local fakeapi = require "fakeapi"
local shell = require "shell"

local q = shell.q
local LUA = jit and "luajit" or "lua5.4"
-- the build this run loaded (build/lua5.4, build/luajit, make sanitize's), for the examples too
local BUILD = assert(package.searchpath("blandeval.core", package.cpath)):match("^(.*)/blandeval/core%.so$")
local ENV = "env -u BLAND_API_KEY -u BLAND_BASE_URL -u RUN_ID -u RUN_ID_B "
  .. "LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='" .. BUILD .. "/?.so;;' "

local function run(cmd)
  local out = shell.sh(cmd .. " 2>&1; echo \"rc=$?\"")
  local body, rc = out:match("^(.-)rc=(%d+)\n?$")
  return body, tonumber(rc)
end

local function failed_calls(client, run_id)
  local list = {}
  for r in client:failed_call_results(run_id) do list[#list + 1] = r end
  return list
end

describe("examples", function()
  local api, client
  setup(function()
    api = fakeapi.start()
    client = blandeval.new { api_key = "test-key", base_url = api.base_url }
  end)
  teardown(function()
    if client then client:close() end
    if api then api.stop() end
  end)

  it("demo.sh: report, failed calls, why they failed, a CSV of them, a flagged regression", function()
    local failed = failed_calls(client, "cmp-a-2000")
    assert.is_true(#failed > 100)
    local dir = shell.sh("mktemp -d"):gsub("%s+$", "")
    local out, rc = run(ENV .. "sh examples/demo.sh " .. LUA .. " " .. BUILD .. " " .. q(dir))
    -- the demo starts its own fake API under dir and stops it on the way out
    local csv_path = dir .. "/demo/failed-calls.csv"
    local f = io.open(csv_path, "rb")
    local csv = f and f:read("*a")
    if f then f:close() end
    local left = shell.sh("pgrep -fc " .. q("[n]ginx: master process .*" .. dir .. "/demo-api") .. " || true")
    shell.sh("rm -rf " .. q(dir))
    assert.are.equal(0, rc, out)
    assert.are.equal("0", (left:gsub("%s+$", "")), "the demo's fake API was stopped")
    for _, cmd in ipairs { "report cmp-a-2000", "calls cmp-a-2000 --failed --agent-results --limit 10",
      "verdicts cmp-a-2000 --failed --limit 10", "compare cmp-a-2000 cmp-b-2000 --limit 5" } do
      assert.is_truthy(out:find("\n$ blandeval " .. cmd .. "\n", 1, true), cmd)
    end
    assert.is_truthy(out:find("\ncalls         2000: ", 1, true), out)
    assert.is_truthy(out:find(("\nfailed calls  %d "):format(#failed), 1, true), out)
    for i = 1, 10 do
      assert.is_truthy(out:find("\n" .. failed[i].call_id .. "  ", 1, true), failed[i].call_id)
    end
    assert.is_truthy(out:find(("\n%d failed calls written to "):format(#failed), 1, true), out)
    local rows = 0
    for _ in csv:gmatch("\r?\n") do rows = rows + 1 end
    assert.are.equal(#failed + 1, rows)
    assert.is_truthy(csv:find("\n" .. failed[#failed].id .. ",", 1, true))
    assert.is_truthy(out:find("\nregression: yes (Audio Quality)\n(exit status 1: a regression was flagged)\n",
      1, true), out)
  end)

  it("failed_calls.lua: each failed call with the agents that failed it", function()
    local failed = failed_calls(client, "run-250")
    local names = {}
    for s in client:agent_snapshots("run-250") do names[s.id] = s.name end
    local out, rc = run(ENV .. "BLAND_API_KEY=test-key BLAND_BASE_URL=" .. q(api.base_url) .. " "
      .. LUA .. " examples/failed_calls.lua run-250")
    assert.are.equal(0, rc, out)
    local pos = 1
    for _, r in ipairs(failed) do
      local at = out:find(r.call_id, pos, true)
      assert.is_truthy(at, r.call_id)
      pos = at
      for _, v in ipairs(r.agent_results or {}) do
        if v.failed then assert.is_truthy(out:find(names[v.eval_run_agent_snapshot_id], pos, true)) end
      end
    end
    assert.is_truthy(out:find(("\n%d failed calls; run "):format(#failed), 1, true), out)
    local _, missing = run(ENV .. LUA .. " examples/failed_calls.lua")
    assert.are.equal(2, missing)
  end)
end)
