-- What the fuzz targets (spec/fuzz/) found, kept as plain specs under both interpreters: the
-- pager's Lua entry points take their arguments from transports written in Lua, so bad ones
-- must raise a clear error, never run undefined behaviour or be bent silently into a URL.
local core = require "blandeval.core"

local mtype = math.type

local function raises(words, f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "no error; expected: " .. words)
  assert.are.equal("string", type(err))
  assert.truthy(err:find(words, 1, true), err)
end

local function url(endpoint, run_id, params)
  return core.pager(endpoint, run_id, params):url("https://h")
end

describe("fuzz regressions: pager:response status", function()
  -- pager_response found: a NaN status was converted to a C long (undefined behaviour)
  it("refuses a status that is not a whole number from 0 to 999, and stays as it was", function()
    local p = core.pager("call-results", "r", { starting_after = "c" })
    local before = p:url("https://h")
    for _, s in ipairs({ 0 / 0, math.huge, -math.huge, 1e300, -1, 2.5, 1000 }) do
      raises("status must be a whole number from 0 to 999", p.response, p, s, "{}")
    end
    assert.are.equal(before, p:url("https://h"))
    assert.is_false(p:done())
  end)

  it("still reads every status in range", function()
    for _, s in ipairs({ 0, 100, 404, 999 }) do
      local page, err = core.pager("call-results", "r"):response(s, "")
      assert.is_nil(page)
      assert.are.equal("http", err.kind)
    end
    local page = core.pager("run", "r"):response(200.0, '{"data":{"id":"r"},"errors":null}')
    assert.are.equal("r", page.id)
  end)
end)

describe("fuzz regressions: the URL a pager builds", function()
  -- url found: "", "." and ".." made a path outside the run ("/v1/evals/runs/" is the list of
  -- runs, ".." is a dot segment even as %2E%2E)
  it("refuses a run id that is not one path segment", function()
    for _, ep in ipairs({ "call-results", "agent-results", "agent-snapshots", "run" }) do
      for _, id in ipairs({ "", ".", ".." }) do
        raises('a run id cannot be empty, "." or ".."', core.pager, ep, id)
      end
    end
    assert.are.equal("https://h/v1/evals/runs/.../call-results", url("call-results", "..."))
    assert.are.equal("https://h/v1/evals/runs/.a", url("run", ".a"))
    assert.are.equal("https://h/v1/evals/runs/..%00", url("run", "..\0"))
    assert.are.equal("https://h/v1/evals/runs", url("runs", nil))   -- takes no run id
  end)

  -- url found: limit = 1e300 was cut to 31 digits, 2.5 sent as 2, NaN as "nan"
  it("refuses a number it cannot write exactly", function()
    for _, v in ipairs({ 1e300, 0 / 0, math.huge, 2.5, -0.5, 2 ^ 53 + 2 }) do
      raises("parameter 'limit' must be a whole number of at most 2^53", core.pager, "call-results", "r",
        { limit = v })
    end
    if mtype then -- an integer beyond 2^53 would not read back the same as a double
      raises("must be a whole number of at most 2^53", core.pager, "runs", nil, { limit = math.tointeger(2 ^ 53) + 1 })
    end
    assert.are.equal("https://h/v1/evals/runs/r/call-results?limit=100", url("call-results", "r", { limit = 100.0 }))
    assert.are.equal("https://h/v1/evals/runs?limit=9007199254740992&status=DONE",
      url("runs", nil, { limit = 2 ^ 53, status = "DONE" }))
    assert.are.equal("https://h/v1/evals/runs?limit=-9007199254740992", url("runs", nil, { limit = -2 ^ 53 }))
  end)

  -- url found: a table value was left out of the query without a word
  it("refuses a parameter that is not a string, boolean or number", function()
    raises("parameter 'status' must be a string, a boolean or a number, got table", core.pager, "runs", nil,
      { status = {} })
    raises("parameter 'include_agent_results' must be a string, a boolean or a number, got function",
      core.pager, "call-results", "r", { include_agent_results = print })
  end)

  -- url found: starting_after = true made the pager memcpy from NULL (undefined
  -- behaviour) and sent an empty cursor
  it("refuses a cursor that is not a non-empty string, and two cursors", function()
    for _, c in ipairs({ true, false, {}, 5, "" }) do
      raises("'starting_after' must be a non-empty string", core.pager, "call-results", "r", { starting_after = c })
      raises("'ending_before' must be a non-empty string", core.pager, "agent-results", "r", { ending_before = c })
    end
    raises("starting_after and ending_before cannot be combined", core.pager, "call-results", "r",
      { starting_after = "a", ending_before = "b" })
    local p = core.pager("call-results", "r", { ending_before = "a\0b" })
    assert.are.equal("https://h/v1/evals/runs/r/call-results?ending_before=a%00b", p:url("https://h"))
    assert.are.same({ "a\0b", true }, { p:cursor() })
  end)

  -- url found: "run\0x" was taken for "run", and params that are not a table were ignored
  it("refuses an endpoint name with a NUL and params that are not a table", function()
    raises("unknown endpoint", core.pager, "run\0x", "r")
    raises("table expected", core.pager, "call-results", "r", "limit=1")
    assert.are.equal("https://h/v1/evals/runs/r/call-results", url("call-results", "r", nil))
  end)
end)
