-- Allocation failure in page turns: spec/support/oom_client.c runs each scenario below
-- against the fake API with an allocator that fails the Nth allocation of the scenario,
-- for N = 1, 2, ... until a run completes without reaching a failure. Each failure must be
-- a clean memory error (never a crash, a hang or another error), the client must still
-- work afterwards, an iterator called again must raise again or give exactly the items
-- it had not given (never skip or repeat one), and closing the Lua state must give back
-- every byte. Two kinds of failure:
--   "Nth"    only the Nth allocation fails. Lua 5.4 then collects and tries again, so the
--            failure is mostly absorbed: that sweep shows that a full collection at any
--            point of a page turn frees nothing still in use (the valgrind run below makes
--            a use after free visible). LuaJIT does not try again: each one is an error.
--   "from N" the Nth allocation and every one after it fail.
-- Every N is swept for the single-run iterations, the failing iteration and client
-- construction ("from N"); the other sweeps, which turn the same pages through other paths,
-- take every 7th N to stay fast (the PLAN below). LuaJIT 2.1 (GC64, as Debian builds it)
-- accepts a custom allocator in lua_newstate; a build that refuses it makes these pending.
--
-- A few N also run under valgrind, for what the Lua allocator cannot see: libcurl handles
-- and the core's malloc'd buffers (each forked child is leak-checked as it exits).
local fakeapi = require "fakeapi"
local shell = require "shell"

local pc = jit and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
local q = shell.q

local function run(cmd) return shell.sh(cmd .. " 2>&1") end

-- Loads the modules and makes the clients, unarmed. A scenario notes what it is handed in
-- seen/tags[1..nseen], slots made beforehand, so that no allocation failure can fall
-- between an item handed out and its note; check (run unarmed) judges the notes.
local PRELUDE = [[
local blandeval = require "blandeval"
require "blandeval.many"     -- LuaJIT's require cannot load a module again after a failure
local TAG = os.getenv("OOM_TAG")
local function new(o)
  o.api_key, o.base_url = "test-key", os.getenv("BLAND_BASE_URL")
  o.retry_base_delay, o.retry_max_delay = 0, 0
  return blandeval.new(o)
end
local seen, tags, nseen
local function start(size)
  seen, tags, nseen = {}, {}, 0
  for i = 1, size do seen[i], tags[i] = false, false end
end
local function check(want)
  local once = {}
  for i = 1, nseen do
    local key = tostring(tags[i]) .. "/" .. tostring(seen[i])
    if once[key] then error("check: " .. key .. " came twice", 0) end
    once[key] = true
  end
  if nseen ~= want then error(("check: %d items, want %d"):format(nseen, want), 0) end
end
-- the rest of an interrupted iteration: it raises again, or the items make up the run
-- (the second loop value is a tag for many, a page otherwise)
local function resume(step, it, want)
  local ok, err = pcall(function()
    for r, tag in step, it do
      nseen = nseen + 1; seen[nseen], tags[nseen] = r.id, type(tag) == "string" and tag
    end
  end)
  if not ok and err == nil then error("check: the iterator raised nil", 0) end
  if ok then check(want) end
end
]]

-- name -> the scenario script's body: it returns the scenario and its check(ok)
local SCENARIOS = {
  iterate = [[
local client = new { page_size = 10 }
local step, it, other
return function()
  step, it, other = nil, nil, nil
  start(25)
  step, it = client:call_results("run-25")      -- 3 pages, the next one prefetched each time
  for r in step, it do nseen = nseen + 1; seen[nseen] = r.id end
  -- one item of another run, then a close with its next page in flight
  local step2, it2 = client:call_results("run-12")
  other = step2(it2)
  it2:close()
end, function(ok)
  if ok then
    check(25)
    if not other then error("check: no item of run-12", 0) end
  elseif it then
    resume(step, it, 25)
  end
end
]],
  -- the loop as users write it: on Lua 5.4 an error closes the iterator (its 4th value)
  iterate_no_prefetch = [[
local client = new { page_size = 10, prefetch = false }
local step, it
return function()
  step, it = nil, nil
  start(25)
  local control, closing
  step, it, control, closing = client:call_results("run-25")
  for r in step, it, control, closing do nseen = nseen + 1; seen[nseen] = r.id end
end, function(ok)
  if ok then check(25) elseif it then resume(step, it, 25) end
end
]],
  pages = [[
local client = new {}
local cursor
return function()
  start(25)
  cursor = nil
  for _ = 1, 3 do
    local page, err = client:call_results_page("run-25", { limit = 10, starting_after = cursor })
    if not page then error(err, 0) end
    for _, r in ipairs(page.data) do nseen = nseen + 1; seen[nseen] = r.id end
    cursor = page.next_cursor
  end
end, function(ok)
  if not ok then return end
  check(25)
  if cursor ~= nil then error("check: a cursor after the last page", 0) end
end
]],
  many = [[
local client = new { page_size = 10 }
local step, it
return function()
  step, it = nil, nil
  start(37)
  step, it = client:many({ { "call_results", "run-25" }, { "call_results", "run-12" } },
    { concurrency = 2 })
  for r, tag in step, it do nseen = nseen + 1; seen[nseen], tags[nseen] = r.id, tag end
end, function(ok)
  if ok then check(37) elseif it then resume(step, it, 37) end
end
]],
  -- every page after the first answers 503 once: a retry inside each of those page turns
  retries = [[
local client = new { page_size = 20 }
local run = "fault-503-once@" .. TAG .. "-"
local step, it
return function()
  step, it = nil, nil
  start(60)
  step, it = client:call_results(run .. OOM_N)
  for r in step, it do nseen = nseen + 1; seen[nseen] = r.id end
end, function(ok)
  if ok then check(60) elseif it then resume(step, it, 60) end
end
]],
  -- page 2 carries errors on a 200: the iteration fails, and must stay failed
  failing = [[
local client = new { page_size = 10 }
local step, it
return function()
  step, it = nil, nil
  start(10)
  step, it = client:call_results("fault-errors-200")
  local ok, err = pcall(function()
    for r in step, it do nseen = nseen + 1; seen[nseen] = r.id end
  end)
  if ok then error("scenario: the iteration did not fail", 0) end
  if type(err) ~= "table" or err.kind ~= "protocol" then error(err, 0) end
end, function(ok)
  if ok then check(10) end
  if not it then return end
  local again, err = pcall(function() for _ in step, it do end end)
  if again then error("check: the failed iteration ended as if the run were complete", 0) end
  if err == nil then error("check: the iterator raised nil", 0) end
end
]],
  -- a constructor that fails half-way must leave nothing behind
  construct = [[
return function()
  new { cainfo = "/nonexistent/ca.pem", user_agent = "oom" }
  local c = new {}
  local page, err = c:call_results_page("run-3")
  if not page then error(err, 0) end
  c:close()
end
]],
}

-- scenario, the stride of N for "from N" and for "Nth", at least this many allocations in
-- a whole run (so that a sweep cannot pass by testing nothing)
local PLAN = {
  { "iterate", 1, 1, 350 },
  { "construct", 1, 1, 60 },
  { "iterate_no_prefetch", 1, 7, 250 },
  { "failing", 1, 7, 200 },
  { "pages", 7, 7, 250 },
  { "many", 7, 7, 400 },
  { "retries", 7, 7, 500 },
}

describe("page turns under allocation failure", function()
  local dir = (run("mktemp -d"):gsub("%s+$", ""))
  local harness = dir .. "/oom_client"
  local so = package.searchpath("blandeval.core", package.cpath)
  local cpath = so and so:gsub("blandeval/core%.so$", "?.so")
  local api, unsupported

  setup(function()
    math.randomseed(os.time())
    assert(cpath, "the built blandeval.core is not on package.cpath")
    local out = run(("cc -std=c99 -O1 -g -Wall -Wextra -Werror -o %s spec/support/oom_client.c "
      .. "$(pkg-config --cflags --libs %s) && echo built"):format(q(harness), pc))
    assert(out:find("built"), out)
    api = fakeapi.start()
  end)

  teardown(function()
    if api then api.stop() end
    run("rm -rf " .. q(dir))
  end)

  local n_scripts = 0
  local function script(name)
    n_scripts = n_scripts + 1
    local path = ("%s/%s-%d.lua"):format(dir, name, n_scripts)
    local f = assert(io.open(path, "w"))
    f:write(PRELUDE, SCENARIOS[name])
    f:close()
    return path
  end

  -- Runs the harness (under prefix, e.g. valgrind) and returns runs, allocations, absorbed.
  local function sweep(name, mode, every, stride, prefix)
    local tag = ("%s-%s-%d-%d"):format(name, mode, os.time(), math.random(1, 1e9))
    local out = run(("BLAND_BASE_URL=%s OOM_TAG=%s %s %s %s %s %s %s %d %d"):format(
      q(api.base_url), q(tag), prefix or "", q(harness), q(cpath), q(package.path),
      q(script(name)), mode, every, stride))
    if out:find("^unsupported") then
      unsupported = out
      return nil
    end
    local runs, allocs, absorbed = out:match("^ok (%d+) (%d+) (%d+)\n$")
    assert(runs, out)
    return tonumber(runs), tonumber(allocs), tonumber(absorbed)
  end

  for _, p in ipairs(PLAN) do
    local name, min_allocs = p[1], p[4]
    for _, mode in ipairs { "after", "once" } do
      local stride = mode == "after" and p[2] or p[3]
      local what = mode == "once" and "the Nth allocation fails" or "every allocation from the Nth fails"
      it(("%s: %s, N = 1, %s..."):format(name, what, stride == 1 and "2, 3" or "8, 15"), function()
        local runs, allocs = sweep(name, mode, stride == 1 and -1 or 0, stride)
        if not runs then return pending(unsupported) end
        assert.is_true(allocs >= min_allocs, ("a whole run made %d allocations, fewer than %d: "
          .. "the sweep proves little"):format(allocs, min_allocs))
        assert.is_true(runs > allocs / stride, ("%d runs for %d allocations"):format(runs, allocs))
      end)
    end
  end

  -- what the Lua allocator cannot see, for a few N; "Nth" only on Lua 5.4, where it is the
  -- one that differs from "from N" (a collection at each point)
  local VALGRIND = { { "iterate", "after", 97 }, { "many", "after", 173 }, { "construct", "after", 31 } }
  if not jit then table.insert(VALGRIND, { "iterate", "once", 101 }) end
  for _, v in ipairs(VALGRIND) do
    it(("under valgrind: %s, %s, N = 1, %d, %d..."):format(v[1], v[2] == "once" and "the Nth allocation fails"
      or "every allocation from the Nth fails", 1 + v[3], 1 + 2 * v[3]), function()
      if not run("command -v valgrind"):find("valgrind") then return pending("valgrind is not installed") end
      local logs = dir .. "/valgrind"
      run("rm -rf " .. q(logs) .. " && mkdir " .. q(logs))
      -- each child is checked as it exits (definite leaks, invalid accesses): it exits 99
      local prefix = ("OOM_TIMEOUT=120 valgrind -q --leak-check=full --show-leak-kinds=definite "
        .. "--errors-for-leak-kinds=definite --error-exitcode=99 --log-file=%s"):format(q(logs .. "/%p.log"))
      local ok, runs = pcall(sweep, v[1], v[2], 0, v[3], prefix)
      local report = run("cat " .. q(logs) .. "/*.log")
      assert(ok, tostring(runs) .. "\n" .. report)
      if not runs then return pending(unsupported) end
      assert.are.equal("", report)
      assert.is_true(runs >= 3)
    end)
  end
end)
