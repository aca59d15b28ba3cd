-- Allocation failure: spec/support/oom.c decodes with an allocator that fails the
-- Nth allocation, for every N until the decode completes. Every failure must be a
-- clean memory error, and closing the Lua state must give back every byte: the
-- decoder owns no memory outside Lua's reach.
local pagegen = require "pagegen"

local lua_version = jit and "5.1" or _VERSION:match("%d+%.%d+")
local pc = jit and "luajit" or "lua" .. lua_version

local function run(cmd) return require("shell").sh(cmd .. " 2>&1") end

describe("decode under allocation failure", function()
  local dir = (run("mktemp -d"):gsub("%s+$", ""))
  local harness = dir .. "/oom"
  local so = package.searchpath("blandeval.core", package.cpath)

  setup(function()
    local out = run(("cc -O1 -g -o %s spec/support/oom.c $(pkg-config --cflags --libs %s) && echo built")
      :format(harness, pc))
    assert(out:find("built"), out)
  end)

  teardown(function() run("rm -rf " .. dir) end)

  local function check(name, text, want_type, keep_nulls)
    it(name, function()
      local path = dir .. "/input.json"
      local f = assert(io.open(path, "wb"))
      f:write(text)
      f:close()
      local out = run(("%s %s %s %s"):format(harness, so, path, keep_nulls and "keep_nulls" or ""))
      local attempts, allocs, ty = out:match("^ok (%d+) (%d+) (%a+)")
      assert(attempts, out)
      assert.are.equal(want_type, ty)
      assert.is_true(tonumber(allocs) > 0, "the decode allocated nothing: the test proves nothing")
    end)
  end

  local page = pagegen.call_results_page { seed = 3, count = 3, include_agent_results = true }
  assert(#page > 4096, "the page must be large enough for the string cache")
  check("a call-results page (string cache, escapes)", page, "table")
  check("a call-results page, keep_nulls", page, "table", true)
  check("a small document (no string cache)", '{"a":[1,2.5,null,"x\\u00e9"],"b":{"c":true}}', "table")
  check("deep nesting (frames beyond the inline ones)", ("["):rep(70) .. ("]"):rep(70), "table")
  check("a long escaped string (scratch buffer growth)",
    '"' .. ("ab\\n\\u00e9\\ud83d\\ude00"):rep(400) .. '"', "string")
  check("a large array (flushed containers)", "[" .. ("1,"):rep(4100) .. ("[],{},"):rep(10) .. "0]", "table")
  check("long numbers (the VM's conversion)", "[" .. ("1"):rep(30) .. ".5, 1e-400, 0." .. ("0"):rep(50) .. "1e100]",
    "table")
  check("invalid input (error path)", "[" .. ("[1,"):rep(50) .. "x", "nil")
end)
