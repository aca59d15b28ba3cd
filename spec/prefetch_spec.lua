-- Prefetch (libcurl transport): while the caller reads page N, the request for page N+1 is
-- already at the server. Checked at the fake API by what it has received, never by timing.
-- The ngx transport does not prefetch: these specs are #curl.
local blandeval = require "blandeval"
local fakeapi = require "fakeapi"
local transport = require "transport"
local core = require "blandeval.core"

local ids_of, fresh = transport.ids_of, transport.fresh

describe("prefetch #curl", function()
  local api

  setup(function()
    math.randomseed(os.time())
    api = fakeapi.start()
  end)
  teardown(function() if api then api.stop() end end)

  local function client(opts) return transport.client(api, opts) end

  local function requests(run_id) return api.stats(run_id).requests end

  -- the server's request count for run_id once it stops changing (at most ~3 s)
  local function settled_requests(run_id, want)
    local n
    for _ = 1, 300 do
      n = requests(run_id)
      if n >= want then break end
      core.sleep(0.01)
    end
    return n
  end

  local function collect(f, s, c, cl)
    local out = {}
    for r in f, s, c, cl do out[#out + 1] = r end
    return out
  end

  it("page N+1 is at the server when the caller gets page N, and only that one", function()
    local c = client({ page_size = 10 })
    api.reset()
    local n = 0
    for _, page in c:call_results("run-60") do
      n = n + 1
      if n % 10 == 1 and page.number < 6 then
        -- no further call into the library happens while the server is watched
        assert.are.equal(page.number + 1, settled_requests("run-60", page.number + 1), "item " .. n)
        core.sleep(0.05)
        assert.are.equal(page.number + 1, requests("run-60"), "never two pages ahead")
      end
    end
    assert.are.equal(60, n)
    assert.are.equal(6, requests("run-60"), "the last page asks for nothing more")
    assert.are.equal(1, api.stats("run-60").connections)
  end)

  it("prefetch = false asks for a page only when the caller reaches it", function()
    local c = client({ page_size = 10, prefetch = false })
    api.reset()
    local n = 0
    for _, page in c:call_results("run-30") do
      n = n + 1
      assert.are.equal(page.number, requests("run-30"))
    end
    assert.are.equal(30, n)
    assert.has_error(function() client({ prefetch = "yes" }) end,
      "bad argument #1 to 'new' (option 'prefetch' must be a boolean)")
  end)

  it("gives the same items in the same order, forward and backward, on any page size", function()
    for _, run_id in ipairs { "run-250", "opaque-60" } do
      local want = ids_of(collect(client({ prefetch = false }):call_results(run_id)))
      for _, size in ipairs { 1, 7, 100 } do
        local c = client({ page_size = size })
        assert.are.same(want, ids_of(collect(c:call_results(run_id))), run_id .. " " .. size)
        if run_id == "run-250" then                -- (opaque runs take their own cursors only)
          local back = ids_of(collect(c:call_results(run_id, { ending_before = want[#want] })))
          assert.are.equal(#want - 1, #back)
          for i = 1, #back do assert.are.equal(want[#want - i], back[i], run_id .. " " .. size) end
        end
      end
    end
  end)

  it("an abandoned iterator stops its prefetch; the client keeps working", function()
    local c = client({ page_size = 10 })
    api.reset()
    local n = 0
    for _ in c:call_results("run-60") do
      n = n + 1
      if n == 15 then break end
    end
    collectgarbage()
    collectgarbage()
    assert.are.equal(3, settled_requests("run-60", 3), "pages 1, 2 and the prefetched 3")
    local f, s = c:call_results("run-45")
    f(s)
    s:close()
    assert.are.equal(60, #collect(c:call_results("run-60")))
    assert.are.equal(3 + 6, requests("run-60"))
  end)

  it("an error of the prefetched page surfaces when the caller reaches it, not before", function()
    local id = fresh("fault-500-forever")
    local c = client({ page_size = 10, max_retries = 2 })
    local n, ok, err = 0, nil, nil
    ok, err = pcall(function()
      for r in c:call_results(id) do
        n = n + 1
        if n == 10 then
          -- page 2 has failed at the server already; the caller does not know yet
          assert.are.equal(2, settled_requests(id, 2))
          assert.is_string(r.id)
        end
      end
    end)
    assert.is_false(ok)
    assert.are.equal(10, n, "every item of page 1 came first")
    assert.are.equal(500, err.status)
    assert.are.equal(3, err.attempts, "the prefetch, then the retries")
    assert.are.equal(4, requests(id))
    assert.is_string(err.starting_after)
  end)

  it("a prefetch that failed once is retried when reached; nothing is lost", function()
    local id = fresh("fault-503-once")
    local want = ids_of(collect(client({ prefetch = false, page_size = 10 }):call_results(fresh("fault-503-once"))))
    local got = ids_of(collect(client({ page_size = 10 }):call_results(id)))
    assert.are.same(want, got)
    assert.are.equal(60, #got)
  end)

  it("the attempt's timeout starts when the caller asks, not when the prefetch started", function()
    -- the caller spends longer on each page than the timeout allows one attempt
    local c = client({ page_size = 10, timeout = 0.3, max_retries = 0 })
    local n = 0
    for _ in c:call_results("run-30") do
      n = n + 1
      if n % 10 == 1 then core.sleep(0.5) end
    end
    assert.are.equal(30, n)
    -- and a prefetched page that is slow to come ends as a timeout, when reached
    local id = fresh("fault-slow")
    local slow = client({ page_size = 10, timeout = 0.5, max_retries = 0 })
    local m = 0
    local ok, err = pcall(function() for _ in slow:call_results(id) do m = m + 1 end end)
    assert.is_false(ok)
    assert.are.equal(10, m)
    assert.are.equal("timeout", err.kind)
    assert.are.equal("OPERATION_TIMEDOUT", err.curl)
  end)

  it("iterators and single pages on one client interleave without mixing their pages", function()
    local ref = client({ prefetch = false })
    local want_a = ids_of(collect(ref:call_results("run-60")))
    local want_b = ids_of(collect(ref:call_results("run-45")))
    local c = client({ page_size = 7 })
    local fa, sa = c:call_results("run-60")
    local fb, sb = c:call_results("run-45")
    local got_a, got_b = {}, {}
    for i = 1, 60 do
      got_a[#got_a + 1] = fa(sa).id
      if i <= 45 then got_b[#got_b + 1] = fb(sb).id end
      if i % 9 == 0 then assert(c:call_results_page("run-5")) end
    end
    assert.is_nil(fa(sa))
    assert.is_nil(fb(sb))
    assert.are.same(want_a, got_a)
    assert.are.same(want_b, got_b)
  end)

  it("closing the client with a prefetch in flight: the next step raises 'closed'", function()
    local c = client({ page_size = 10 })
    local f, s = c:call_results("run-60")
    assert.is_table(f(s))
    c:close()
    for _ = 1, 9 do assert.is_table(f(s)) end      -- the page in hand is still read
    local ok, err = pcall(f, s)
    assert.is_false(ok)
    assert.matches("closed", tostring(err))
    collectgarbage()
    collectgarbage()
  end)
end)
