-- The pager on its own: the sans-IO state machine that every transport drives.
-- No network here: responses are handed to it as (status, body, meta).
local core = require "blandeval.core"
local blandeval = require "blandeval"

local function page_body(ids, has_more, next_cursor, extra)
  local items = {}
  for i, id in ipairs(ids) do items[i] = ('{"id":"%s","n":%d}'):format(id, i) end
  return ('{"data":{"object":"list","data":[%s],"has_more":%s,"next_cursor":%s},"errors":null%s}')
    :format(table.concat(items, ","), tostring(has_more), next_cursor and ('"' .. next_cursor .. '"') or "null",
      extra or "")
end

describe("pager", function()
  it("builds the first URL from the run id and the params, escaping the run id", function()
    local p = core.pager("call-results", "run a/b?c", { include_agent_results = true, limit = 10 })
    assert.are.equal("https://h/v1/evals/runs/run%20a%2Fb%3Fc/call-results?include_agent_results=true&limit=10",
      p:url("https://h"))
    p = core.pager("agent-snapshots", "r1")
    assert.are.equal("https://h/v1/evals/runs/r1/agent-snapshots", p:url("https://h"))
  end)

  it("refuses params with a metatable: a value only an __index makes is not kept alive", function()
    -- the pager used such a value after popping it: under make gc-torture, ASan saw the
    -- string freed while the URL was built (a long one: short strings are shared)
    local params = setmetatable({}, { __index = function(_, k)
      if k == "status" then return ("s"):rep(3000) .. k end
    end })
    local ok, err = pcall(core.pager, "runs", nil, params)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("params cannot have a metatable", 1, true), tostring(err))
    assert.are.equal("https://h/v1/evals/runs?status=done", core.pager("runs", nil, { status = "done" }):url("https://h"))
  end)

  it("follows next_cursor and stops when has_more is false", function()
    local p = core.pager("call-results", "r", { limit = 2 })
    local seen = {}
    local page = assert(p:response(200, page_body({ "a", "b" }, true, "b", ',"run_status":"RUNNING"'),
      { seen = seen, request_id = "req_1" }))
    assert.are.equal(1, page.number)
    assert.is_nil(page.cursor)
    assert.are.equal("RUNNING", page.run_status)
    assert.are.equal("req_1", page.request_id)
    assert.are.equal("https://h/v1/evals/runs/r/call-results?limit=2&starting_after=b", p:url("https://h"))
    page = assert(p:response(200, page_body({ "c" }, false, nil), { seen = seen }))
    assert.are.equal(2, page.number)
    assert.are.equal("b", page.cursor)
    assert.is_true(p:done())
    assert.is_nil(p:url("https://h"))
  end)

  it("escapes cursors whole, NUL bytes included", function()
    local p = core.pager("call-results", "r", { starting_after = "a&b=c\0d" })
    assert.are.equal("https://h/v1/evals/runs/r/call-results?starting_after=a%26b%3Dc%00d", p:url("https://h"))
  end)

  it("goes backward with ending_before, preferring the server's next_cursor", function()
    local p = core.pager("call-results", "r", { ending_before = "z" })
    assert(p:response(200, page_body({ "x", "y" }, true, "tok")))
    assert.are.equal("https://h/v1/evals/runs/r/call-results?ending_before=tok", p:url("https://h"))
    assert(p:response(200, page_body({ "v", "w" }, true, nil)))
    assert.are.equal("https://h/v1/evals/runs/r/call-results?ending_before=v", p:url("https://h"))
  end)

  local function fails(kind, words, status, body, pager)
    local p = pager or core.pager("call-results", "r", {})
    local page, err = p:response(status, body, { seen = {} })
    assert.is_nil(page)
    assert.are.equal(kind, err.kind)
    assert.truthy(err.message:find(words, 1, true), err.message)
    return err, p
  end

  it("detects every protocol fault", function()
    fails("protocol", "no cursor", 200, page_body({ "a" }, true, nil))
    fails("protocol", "not the API's envelope", 200, "[1,2]")
    fails("protocol", "no data object", 200, '{"errors":null}')
    fails("protocol", "not an array", 200, '{"data":{"data":5,"has_more":false}}')
    fails("protocol", "has_more is not a boolean", 200, '{"data":{"data":[],"has_more":"no"}}')
    fails("protocol", "carries errors", 200, '{"data":{"data":[],"has_more":false},"errors":[{"error":"X","message":"m"}]}')
    fails("protocol", "no string id", 200, '{"data":{"data":[{"n":1}],"has_more":false}}')
    local p = core.pager("call-results", "r", { starting_after = "c" })
    fails("protocol", "did not advance", 200, page_body({ "d" }, true, "c"), p)
    p = core.pager("call-results", "r", {})
    local seen = {}
    assert(p:response(200, page_body({ "a", "b" }, true, "b"), { seen = seen }))
    local _, err = p:response(200, page_body({ "b", "c" }, false), { seen = seen })
    assert.are.equal("protocol", err.kind)
    assert.truthy(err.message:find("came twice", 1, true))
  end)

  it("does not advance on a failure, so the same page is asked for again", function()
    local p = core.pager("call-results", "r", { starting_after = "c" })
    local url = p:url("https://h")
    fails("api", "slow down", 429, '{"data":null,"errors":[{"error":"RATE_LIMITED","message":"slow down"}]}', p)
    assert.are.equal(url, p:url("https://h"))
  end)

  it("reads the API's error bodies, and describes the others", function()
    local err = fails("api", "Eval run not found", 404,
      '{"data":null,"errors":[{"error":"EVAL_RUN_NOT_FOUND","message":"Eval run not found"}]}')
    assert.are.equal("EVAL_RUN_NOT_FOUND", err.code)
    assert.are.equal(404, err.status)
    assert.is_false(err.retryable)
    err = fails("api", "Tool not found", 404, '{"errors":[{"code":"TOOL_NOT_FOUND","message":"Tool not found"}]}')
    assert.are.equal("TOOL_NOT_FOUND", err.code)
    fails("api", "Missing required parameter", 400, '{"status":"error","errors":["Missing required parameter"]}')
    fails("api", "legacy", 400, '{"status":"error","message":"legacy"}')
    err = fails("http", "HTTP 502", 502, "<html>bad gateway</html>")
    assert.is_true(err.retryable)
    for _, s in ipairs({ 408, 409, 429, 500, 503 }) do
      assert.is_true(select(2, core.pager("call-results", "r"):response(s, "")).retryable, s)
    end
    for _, s in ipairs({ 400, 401, 403, 404, 422, 301 }) do
      assert.is_false(select(2, core.pager("call-results", "r"):response(s, "")).retryable, s)
    end
    err = fails("decode", "at offset 11", 200, '{"data":{"d')
  end)

  it("redacts the secret from every message", function()
    local _, err = core.pager("call-results", "r"):response(400,
      '{"errors":[{"error":"BAD","message":"key sk-123 is bad"}]}', { secret = "sk-123", request_id = "sk-123" })
    assert.are.equal("key [REDACTED] is bad", err.message)
    assert.are.equal("[REDACTED]", err.request_id)
    assert.is_nil(tostring(err):find("sk-123", 1, true))
  end)

  it("redacts a copy of the secret that was cut to fit, at the end of a field", function()
    local secret = "org_0123456789abcdefghij"
    local long_id = ("R"):rep(120) .. secret          -- the request id buffer holds 127 bytes
    local _, err = core.pager("call-results", "r"):response(500, "", { secret = secret, request_id = long_id })
    assert.is_nil(err.request_id:find("org_0", 1, true), err.request_id)
    assert.truthy(err.request_id:find("%[REDACTED%]$"), err.request_id)
    -- an id that repeats, long enough that the message cuts it
    local p, seen = core.pager("call-results", "r", {}), {}
    local id = ("I"):rep(70) .. secret
    assert(p:response(200, page_body({ id }, true, id), { seen = seen, secret = secret }))
    _, err = p:response(200, page_body({ id }, false), { seen = seen, secret = secret })
    assert.truthy(err.message:find("came twice", 1, true), err.message)
    assert.is_nil(err.message:find("org_0", 1, true), err.message)
    -- core.error redacts what a Lua transport builds
    err = core.error({ kind = "network", message = "x " .. secret, request_id = "rid-" .. secret }, secret)
    assert.are.equal("x [REDACTED]", err.message)
    assert.are.equal("rid-[REDACTED]", err.request_id)
    assert.truthy(tostring(err):find("blandeval: network error", 1, true))
  end)

  it("keeps nulls only when asked", function()
    local body = '{"data":{"data":[{"id":"a","x":null}],"has_more":false},"errors":null}'
    assert.is_nil(assert(core.pager("call-results", "r"):response(200, body)).data[1].x)
    local page = assert(core.pager("call-results", "r", nil, true):response(200, body))
    assert.are.equal(blandeval.null, page.data[1].x)
  end)
end)

describe("retry policy", function()
  local policy = { max_retries = 5, base = 0.5, max = 8, after_max = 60 }

  it("waits exponentially with jitter in [half, full], capped", function()
    assert.are.equal(0.25, core.retry_wait(policy, 1, nil, nil, 0))     -- 0.5 s, at least half
    local w = core.retry_wait(policy, 1, nil, nil, 0.999999)
    assert.is_true(w > 0.49 and w < 0.5, tostring(w))                      -- at most all of it
    assert.are.equal(0.75, core.retry_wait(policy, 2, nil, nil, 0.5))     -- 1 s, three quarters
    assert.are.equal(4, core.retry_wait(policy, 5, nil, nil, 0))          -- 0.5 * 2^4 = 8, the cap; half
  end)

  it("honours Retry-After up to after_max", function()
    assert.are.equal(3, core.retry_wait(policy, 1, 3, nil, 0))
    assert.are.equal(60, core.retry_wait(policy, 1, 3600, nil, 0))
  end)

  it("stops after max_retries and before the deadline", function()
    assert.is_nil(core.retry_wait(policy, 6, nil, nil, 0))
    assert.is_not_nil(core.retry_wait(policy, 5, nil, nil, 0))
    assert.is_nil(core.retry_wait(policy, 1, 2, 1.5, 0))                -- 2 s wait, 1.5 s left
    assert.are.equal(1, core.retry_wait(policy, 1, 1, 1.5, 0))
  end)
end)
