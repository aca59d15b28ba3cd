-- bench/iterate.lua: the client against the fake API on 127.0.0.1, each figure next to
-- its anchor measured in the same run (bench/run.sh starts the server and prints the
-- table from the ROW lines):
--   P2 iterate 5,000 results with agent results, no added latency: items/s against a
--      Python requests loop (bench/pages.py), a LuaSocket + lua-cjson loop, and the floor:
--      the same pages fetched by libcurl decoding nothing (bench/floor.c) plus
--      blandeval.decode of the same bodies. Bodies uncompressed (compress = false, and
--      likewise for the anchors): on loopback gzip only adds the server's compression
--      time, the same for every client; one more row compares the gzip defaults.
--   P3 prefetch: 50 pages, the server 20 ms per page, the caller 20 ms per page
--   P4 memory: 100,000 results with agent results; Lua heap after a full GC, peak RSS
--
--   BLAND_BASE_URL=... BLAND_API_KEY=... FLOOR=build/bench-floor lua5.4 bench/iterate.lua [P2 P3 P4]
local blandeval = require "blandeval"
local core = require "blandeval.core"

local base, key = assert(os.getenv("BLAND_BASE_URL")), assert(os.getenv("BLAND_API_KEY"))
local vm = jit and "LuaJIT" or _VERSION:gsub("Lua ", "Lua ")
local PASSES = tonumber(os.getenv("BENCH_PASSES")) or 7
local want = {}
for _, a in ipairs(arg) do want[a] = true end
if next(want) == nil then want = { P2 = true, P3 = true, P4 = true } end

local function row(figure, value, anchor, ratio, goal, holds)
  print(table.concat({ "ROW", figure, value, anchor, ratio and ("%.2fx"):format(ratio) or "-", goal or "-",
    holds == nil and "-" or (holds and "yes" or "NO") }, "\t"))
end

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

local function best_of(n, f)
  local best, extra = math.huge, nil
  for _ = 1, n do
    local t0 = core.monotonic()
    extra = f()
    local t = core.monotonic() - t0
    if t < best then best = t end
  end
  return best, extra
end

local function client(o)
  o = o or {}
  o.api_key, o.base_url = key, base
  return blandeval.new(o)
end

---------------------------------------------------------------------------------------------
if want.P2 then
  local run_id, n_items = "slow0-5000", 5000      -- slow0: pages made once per server worker
  local params = { include_agent_results = true }
  local c = client({ compress = false })
  local urls, cursors = {}, {}
  for _, page in c:call_results(run_id, params) do          -- warms the server's page cache
    if cursors[#cursors] ~= page then cursors[#cursors + 1] = page end
  end
  for i, page in ipairs(cursors) do
    urls[i] = base .. "/v1/evals/runs/" .. run_id .. "/call-results?include_agent_results=true&limit=100"
      .. (page.cursor and ("&starting_after=" .. page.cursor) or "")
  end
  cursors = nil

  local t_lib, n = best_of(PASSES, function()
    local k = 0
    for _ in c:call_results(run_id, params) do k = k + 1 end
    return k
  end)
  assert(n == n_items, "blandeval read " .. tostring(n))
  local rate = n_items / t_lib
  row("P2 iterate 5000 results (" .. vm .. "), items/s", ("%.0f"):format(rate), "", nil, nil, nil)

  -- Python requests
  local function python(encoding)
    local out = sh((os.getenv("PYTHON") or "python3")
      .. (" bench/pages.py %s %s true %d %s 2>&1"):format(base, run_id, PASSES, encoding))
    local pn, pt = out:match("^(%d+) ([%d.]+)")
    return tonumber(pn), tonumber(pt), out
  end
  local py_n, py_t, py = python("identity")
  if py_n and tonumber(py_n) == n_items then
    local r = tonumber(py_t) / t_lib
    row("P2   vs Python requests loop", ("%.0f/s"):format(rate), ("%.0f/s"):format(n_items / py_t), r,
      ">= 3x", r >= 3)
  else
    row("P2   vs Python requests loop", "-", "unavailable: " .. py:gsub("%s+", " "):sub(1, 60), nil, ">= 3x", nil)
  end

  -- LuaSocket + lua-cjson, the pure-Lua way
  local ok_socket, http = pcall(require, "socket.http")
  local ok_cjson, cjson = pcall(require, "cjson")
  if ok_socket and ok_cjson then
    local ltn12 = require "ltn12"
    local t_sock, sn = best_of(PASSES, function()
      local k, cursor = 0, nil
      repeat
        local parts = {}
        local url = base .. "/v1/evals/runs/" .. run_id .. "/call-results?include_agent_results=true&limit=100"
          .. (cursor and ("&starting_after=" .. cursor) or "")
        local _, code = http.request { url = url, headers = { authorization = key }, sink = ltn12.sink.table(parts) }
        assert(code == 200, "luasocket: HTTP " .. tostring(code))
        local page = cjson.decode(table.concat(parts)).data
        for _ in ipairs(page.data) do k = k + 1 end
        cursor = page.has_more and page.next_cursor or nil
      until not cursor
      return k
    end)
    assert(sn == n_items)
    local r = t_sock / t_lib
    row("P2   vs LuaSocket + lua-cjson loop", ("%.0f/s"):format(rate), ("%.0f/s"):format(n_items / t_sock), r,
      nil, nil)
  else
    row("P2   vs LuaSocket + lua-cjson loop", "-", "unavailable (lua-socket, lua-cjson)", nil, nil, nil)
  end

  -- the floor: libcurl fetching the same pages, plus decoding the same bodies
  local floor = os.getenv("FLOOR")
  if floor then
    local dir = sh("mktemp -d"):gsub("%s+$", "")
    local list = dir .. "/urls"
    local f = assert(io.open(list, "w"))
    f:write(table.concat(urls, "\n"), "\n")
    f:close()
    sh(("BLAND_API_KEY=%q %s %q 1 identity < %q"):format(key, floor, dir, list))   -- saves the bodies
    local bodies = {}
    for i = 1, #urls do
      local bf = assert(io.open(("%s/%04d.json"):format(dir, i), "rb"))
      bodies[i] = bf:read("*a")
      bf:close()
    end
    -- the three measured in turn, pass after pass, so that all see the same machine
    local decode = blandeval.decode
    local t_fetch, t_decode, t_iter = math.huge, math.huge, math.huge
    for _ = 1, PASSES do            -- each from a collected heap
      collectgarbage()
      t_fetch = math.min(t_fetch, tonumber(sh(("BLAND_API_KEY=%q %s - 1 identity < %q"):format(key, floor, list))))
      collectgarbage()
      t_decode = math.min(t_decode, (best_of(1, function()
        for i = 1, #bodies do decode(bodies[i]) end
      end)))
      collectgarbage()
      t_iter = math.min(t_iter, (best_of(1, function() for _ in c:call_results(run_id, params) do end end)))
    end
    sh("rm -rf " .. dir)
    bodies = nil
    collectgarbage()
    local floor_t = t_fetch + t_decode
    local r = t_iter / floor_t
    row("P2   cost vs floor (fetch + decode)", ("%.1f ms"):format(t_iter * 1000),
      ("%.1f + %.1f ms"):format(t_fetch * 1000, t_decode * 1000), r, "<= 1.1x", r <= 1.1)
  end
  c:close()

  -- both with their default compression (gzip): the server's compression time included
  local gz = client()
  local t_gz = best_of(PASSES, function() for _ in gz:call_results(run_id, params) do end end)
  gz:close()
  local gn, gt = python("gzip")
  if gn == n_items then
    row("P2   gzip defaults: vs Python requests", ("%.0f/s"):format(n_items / t_gz), ("%.0f/s"):format(n_items / gt),
      gt / t_gz, nil, nil)
  end
end

---------------------------------------------------------------------------------------------
if want.P3 then
  local run_id, work = "slow20-5000", 0.02     -- 50 pages of 100; 20 ms at the server
  local function timed(prefetch)
    local c = client({ prefetch = prefetch })
    local t0 = core.monotonic()
    local pages, last = 0, nil
    for _, page in c:call_results(run_id) do
      if page ~= last then                     -- the caller's work on each page
        last, pages = page, pages + 1
        core.sleep(work)
      end
    end
    local t = core.monotonic() - t0
    c:close()
    assert(pages == 50)
    return t
  end
  timed(true)                                  -- warms the page cache
  local with = math.huge
  local without = math.huge
  for _ = 1, PASSES do
    with = math.min(with, timed(true))
    without = math.min(without, timed(false))
  end
  local floor = 50 * work
  row("P3 prefetch, 50 pages x (20 ms server, 20 ms caller)", ("%.0f ms"):format(with * 1000),
    ("%.0f ms (50 x 20 ms)"):format(floor * 1000), with / floor, "<= 1.1x", with <= 1.1 * floor)
  row("P3   the same without prefetch", ("%.0f ms"):format(without * 1000),
    ("%.0f ms"):format(floor * 1000), without / floor, nil, nil)
end

---------------------------------------------------------------------------------------------
if want.P4 then
  local run_id = "big-100000"
  local function rss_peak_kb()
    local f = io.open("/proc/self/status")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return tonumber(s:match("VmHWM:%s*(%d+)"))
  end
  local c = client()
  collectgarbage()
  collectgarbage()
  local before = collectgarbage("count")
  local n, t0 = 0, core.monotonic()
  for r in c:call_results(run_id, { include_agent_results = true }) do
    n = n + #r.agent_results
  end
  local t = core.monotonic() - t0
  c:close()
  c = nil
  collectgarbage()
  collectgarbage()
  local after = collectgarbage("count")
  local grew = after - before
  row(("P4 memory, 100000 results with %d verdicts (%s)"):format(n, vm), ("%+.0f KB heap"):format(grew),
    ("%.0f KB at start"):format(before), nil, "within 2048 KB", math.abs(grew) <= 2048)
  row("P4   peak RSS, time", ("%d MB"):format(math.floor((rss_peak_kb() or 0) / 1024)),
    ("%.1f s"):format(t), nil, nil, nil)
end
