-- The HTTP client (README "The client", "Reading a run"): iterators, pages, parameters, item
-- types, connections, compression and closing, over real HTTP against the fake Bland API
-- (spec/support/fakeapi). Runs unchanged under Lua 5.4 and LuaJIT.
local blandeval = require "blandeval"
local fakeapi = require "fakeapi"
local transport = require "transport"

local IS_54 = _VERSION == "Lua 5.4" and not jit

local api

-- A client for the fake API; opts override the defaults.
local function new_client(opts) return transport.client(api, opts) end

local counter = 0
local function uniq(prefix)             -- a run id of its own: fresh stats for one test
  counter = counter + 1
  return prefix .. "@t" .. counter
end
local function other_run()              -- "run-<anything>": a 3-item run with its own stats
  counter = counter + 1
  return "run-other-" .. counter
end

local shell = require "shell"
local q, sh = shell.q, shell.sh

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "/v1/...?a=1&b=2" -> path, { a = "1", b = "2" }, { "a", "b" } (names in order)
local function parse_path(p)
  local path, query = p:match("^([^?]*)%??(.*)$")
  local params, names = {}, {}
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k = unescape(k)
    names[#names + 1] = k
    params[k] = unescape(v)
  end
  return path, params, names
end

local function collect(f, s, c)           -- every item of an iteration: items, pages seen
  local items, pages = {}, {}
  for item, page in f, s, c do
    items[#items + 1] = item
    if pages[#pages] ~= page then pages[#pages + 1] = page end
  end
  return items, pages
end

local ids_of = transport.ids_of

local function slice(list, a, b)
  local out = {}
  for i = a, b do out[#out + 1] = list[i] end
  return out
end

local function reversed(list)
  local out = {}
  for i = #list, 1, -1 do out[#out + 1] = list[i] end
  return out
end

-- The 60 ids of run-60, in run order (one request of 100).
local function run60_ids()
  local page = assert(new_client():call_results_page("run-60", { limit = 100 }))
  assert.are.equal(60, #page.data, "run-60 must have 60 items")
  return ids_of(page.data)
end

---------------------------------------------------------------------------------------------
-- Types of the documented fields. "?" = nullable (absent, or blandeval.null with keep_nulls);
-- "~" = optional (may be absent even with keep_nulls). On Lua 5.4 counts, ms and tokens must
-- be integers and scores floats; LuaJIT has only doubles, so there integral is enough.

local function is_integer(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v == math.floor(v)
end
local function is_float(v)
  if math.type then return math.type(v) == "float" end
  return type(v) == "number"
end
local function is_array(v)
  if type(v) ~= "table" then return false end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  return n == #v
end
local TS = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

local CHECKS = {
  string = function(v) return type(v) == "string" end,
  timestamp = function(v) return type(v) == "string" and v:match(TS) ~= nil end,
  integer = is_integer,
  float = is_float,
  number = function(v) return type(v) == "number" end,
  boolean = function(v) return type(v) == "boolean" end,
  array = is_array,
  table = function(v) return type(v) == "table" end,
}

local SCHEMA = {
  call_result = {
    id = "string", org_id = "string", eval_run_id = "string", call_id = "string",
    call_display_name = "string?", call_started_at = "timestamp?",
    call_duration_seconds = "number?", call_ended_by = "string?",
    transcript_snapshot_ref = "string?", transcript_snapshot_expires_at = "timestamp?",
    status = "string", started_at = "timestamp?", completed_at = "timestamp?",
    overall_score_normalized_0_100 = "float?", text_score_normalized_0_100 = "float?",
    audio_score_normalized_0_100 = "float?", failed_agent_count = "integer",
    insufficient_evidence_agent_count = "integer", agent_results = "array",
    created_at = "timestamp",
  },
  agent_result = {
    id = "string", org_id = "string", eval_run_id = "string", eval_run_call_result_id = "string",
    eval_run_agent_snapshot_id = "string", eval_agent_id = "string",
    eval_agent_version_id = "string", call_id = "string", selected_level_key = "string?",
    selected_level_label = "string?", score_normalized_0_100 = "float?",
    is_target_match = "boolean?", is_insufficient_evidence = "boolean", confidence = "float?",
    reasoning_md = "string?", evidence = "array", failed = "boolean", failure_code = "string?",
    failure_message = "string?", billable_cost_usd = "float?", audit = "table",
    created_at = "timestamp",
  },
  evidence = { source = "string", speaker = "string?", start_ms = "integer?", end_ms = "integer?",
               text = "string" },
  audit = { prompt_version = "string", input_tokens = "integer?", output_tokens = "integer?",
            latency_ms = "integer?" },
  snapshot = {
    id = "string", org_id = "string", eval_run_id = "string", eval_agent_id = "string",
    eval_agent_version_id = "string", position = "integer", key = "string", name = "string",
    modality = "string", system_prompt_md = "string", prompt_md = "string",
    prompt_version = "string", levels = "array", target_level_keys = "array", weight = "number",
    created_at = "timestamp",
  },
  level = { level_key = "string", label = "string", prompt_md = "string", color = "string~" },
}

-- Checks t against SCHEMA[kind]; nulls counts the null fields seen, by name.
local function check_object(t, kind, where, keep_nulls, nulls)
  local schema = SCHEMA[kind]
  assert.is_table(t, where .. " is not a table")
  for k in pairs(t) do
    assert.is_not_nil(schema[k], where .. ": unexpected field " .. tostring(k))
  end
  for field, spec in pairs(schema) do
    local typ, mod = spec:match("^(%a+)([?~]?)$")
    local v, at = t[field], where .. "." .. field
    if v == blandeval.null then
      assert.are.equal("?", mod, at .. " is null but not nullable")
      assert.is_true(keep_nulls, at .. " is blandeval.null although keep_nulls is false")
      nulls[field] = (nulls[field] or 0) + 1
    elseif v == nil then
      assert.is_true(mod == "~" or (mod == "?" and not keep_nulls),
        at .. " is missing" .. (keep_nulls and " (keep_nulls = true must keep it as null)" or ""))
      if mod == "?" then nulls[field] = (nulls[field] or 0) + 1 end
    else
      assert.is_true(CHECKS[typ](v), at .. " should be " .. typ .. ", got " .. type(v) .. " "
        .. tostring(v) .. (math.type and " (" .. tostring(math.type(v)) .. ")" or ""))
    end
  end
end

local STATUSES = { COMPLETE = true, FAILED = true, INSUFFICIENT_EVIDENCE = true, PENDING = true,
                   QUEUED = true, RUNNING = true }

local function check_call_result(r, run_id, keep_nulls, nulls)
  local where = "call result " .. tostring(r.id)
  check_object(r, "call_result", where, keep_nulls, nulls)
  assert.are.equal(run_id, r.eval_run_id, where .. ": eval_run_id")
  assert.is_true(STATUSES[r.status] ~= nil, where .. ": unknown status " .. tostring(r.status))
  local failed, insufficient = 0, 0
  for i, a in ipairs(r.agent_results) do
    local aw = where .. ".agent_results[" .. i .. "]"
    check_object(a, "agent_result", aw, keep_nulls, nulls)
    check_object(a.audit, "audit", aw .. ".audit", keep_nulls, nulls)
    for k, e in ipairs(a.evidence) do
      check_object(e, "evidence", aw .. ".evidence[" .. k .. "]", keep_nulls, nulls)
    end
    assert.are.equal(r.id, a.eval_run_call_result_id, aw .. ": eval_run_call_result_id")
    assert.are.equal(r.call_id, a.call_id, aw .. ": call_id")
    assert.are.equal(run_id, a.eval_run_id, aw .. ": eval_run_id")
    if a.failed then failed = failed + 1 end
    if a.is_insufficient_evidence then insufficient = insufficient + 1 end
  end
  if #r.agent_results > 0 or r.status == "COMPLETE" then
    assert.are.equal(failed, r.failed_agent_count, where .. ": failed_agent_count vs agent_results")
    assert.are.equal(insufficient, r.insufficient_evidence_agent_count,
      where .. ": insufficient_evidence_agent_count vs agent_results")
  end
end

---------------------------------------------------------------------------------------------

describe("blandeval client", function()
  setup(function() api = fakeapi.start() end)
  teardown(function() if api then api.stop() end end)
  before_each(function() api.reset() end)

  describe("call_results iteration", function()
    it("walks run-60 with page_size 25: 60 items in run order over 3 requests of limit=25", function()
      local want = run60_ids()
      api.reset()
      local items, pages = collect(new_client({ page_size = 25 }):call_results("run-60"))
      assert.are.same(want, ids_of(items))
      assert.are.equal(3, #pages)
      local stats = api.stats("run-60")
      assert.are.equal(3, stats.requests, "one request per page")
      for i, p in ipairs(stats.paths) do
        local path, params = parse_path(p)
        assert.are.equal("/v1/evals/runs/run-60/call-results", path, p)
        assert.are.equal("25", params.limit, "request " .. i .. " limit: " .. p)
        assert.is_nil(params.ending_before, p)
        assert.is_nil(params.include_agent_results, "not sent unless given: " .. p)
        if i == 1 then assert.is_nil(params.starting_after, "page 1 has no cursor: " .. p)
        else assert.are.equal(want[(i - 1) * 25], params.starting_after, "cursor of request " .. i) end
      end
    end)

    it("gives each item's page as the second value, with every documented page field", function()
      local want = run60_ids()
      local items, pages = collect(new_client({ page_size = 25 }):call_results("run-60"))
      assert.are.equal(60, #items)
      local sizes, request_ids = { 25, 25, 10 }, {}
      for n, page in ipairs(pages) do
        local at = "page " .. n
        assert.are.equal(n, page.number, at .. ": number")
        assert.is_true(is_integer(page.number), at .. ": number is an integer")
        assert.are.equal(sizes[n], #page.data, at .. ": #data")
        assert.are.equal("COMPLETE", page.run_status, at .. ": run_status")
        assert.are.equal(60, page.run_resolved_call_count, at .. ": run_resolved_call_count")
        assert.is_true(is_integer(page.run_resolved_call_count), at .. ": run_resolved_call_count is an integer")
        assert.matches("^req_%d+$", page.request_id, nil, nil, at .. ": request_id")
        assert.is_nil(request_ids[page.request_id], at .. ": request_id repeats")
        request_ids[page.request_id] = true
        if n == 1 then
          assert.is_nil(page.cursor, "page 1 was fetched without a cursor")
        else
          assert.are.equal(pages[n - 1].next_cursor, page.cursor, at .. ": cursor = previous next_cursor")
          assert.are.equal(want[(n - 1) * 25], page.cursor, at .. ": cursor is the previous page's last id")
        end
        if n < 3 then
          assert.is_true(page.has_more, at .. ": has_more")
          assert.are.equal(want[n * 25], page.next_cursor, at .. ": next_cursor is its last id")
        else
          assert.is_false(page.has_more, "last page: has_more")
          assert.is_nil(page.next_cursor, "last page: next_cursor (null) is absent")
        end
      end
      for i, item in ipairs(items) do
        local page = pages[math.floor((i - 1) / 25) + 1]
        assert.is_true(rawequal(page.data[(i - 1) % 25 + 1], item),
          "item " .. i .. " is the matching element of its page's data")
      end
    end)

    it("sends include_agent_results=true and gets agent results on every finished call", function()
      local run = "run-60"
      local items = collect(new_client():call_results(run, { include_agent_results = true }))
      assert.are.equal(60, #items)
      local full = 0
      for _, r in ipairs(items) do
        if r.status == "COMPLETE" or r.status == "FAILED" or r.status == "INSUFFICIENT_EVIDENCE" then
          assert.are.equal(3, #r.agent_results, "finished call " .. r.id .. " has 3 agent results")
          full = full + 1
        end
      end
      assert.is_true(full > 30, "most calls of run-60 are finished: " .. full)
      local _, params = parse_path(api.stats(run).paths[1])
      assert.are.equal("true", params.include_agent_results)
    end)

    it("sends include_agent_results=false and gets empty agent_results (the counts stay)", function()
      local items = collect(new_client():call_results("run-60", { include_agent_results = false }))
      assert.are.equal(60, #items)
      local failed = 0
      for _, r in ipairs(items) do
        assert.is_table(r.agent_results, r.id .. ": agent_results")
        assert.is_nil(next(r.agent_results), r.id .. ": agent_results is empty")
        assert.is_true(is_integer(r.failed_agent_count), r.id .. ": failed_agent_count")
        failed = failed + r.failed_agent_count
      end
      assert.is_true(failed > 0, "run-60 has failed agent results to count")
      local _, params = parse_path(api.stats("run-60").paths[1])
      assert.are.equal("false", params.include_agent_results)
    end)

    it("defaults page_size to 100: run-250 is 3 requests of 100, 100 and 50", function()
      local _, pages = collect(new_client():call_results("run-250"))
      assert.are.same({ 100, 100, 50 }, { #pages[1].data, #pages[2].data, #pages[3].data })
      local stats = api.stats("run-250")
      assert.are.equal(3, stats.requests)
      for _, p in ipairs(stats.paths) do
        local _, params = parse_path(p)
        assert.are.equal("100", params.limit, p)
      end
    end)

    it("sends the page_size option as limit, and a limit parameter overrides it", function()
      local c = new_client({ page_size = 7 })
      local _, pages = collect(c:call_results("run-20"))
      assert.are.same({ 7, 7, 6 }, { #pages[1].data, #pages[2].data, #pages[3].data })
      assert.are.equal(3, #pages)
      local _, pages9 = collect(c:call_results("run-20", { limit = 9 }))
      assert.are.same({ 9, 9, 2 }, { #pages9[1].data, #pages9[2].data, #pages9[3].data })
      local limits = {}
      for _, p in ipairs(api.stats("run-20").paths) do
        local _, params = parse_path(p)
        limits[#limits + 1] = params.limit
      end
      assert.are.same({ "7", "7", "7", "9", "9", "9" }, limits)
    end)

    it("accepts limit 1 and 100, the bounds", function()
      local c = new_client()
      local one = assert(c:call_results_page("run-60", { limit = 1 }))
      assert.are.equal(1, #one.data)
      assert.is_true(one.has_more)
      local hundred = assert(c:call_results_page("run-250", { limit = 100 }))
      assert.are.equal(100, #hundred.data)
      local _, params = parse_path(api.stats("run-60").paths[1])
      assert.are.equal("1", params.limit)
    end)

    it("resumes with starting_after = a page's next_cursor: exactly the rest of the run", function()
      local want = run60_ids()
      local c = new_client({ page_size = 25 })
      local first = assert(c:call_results_page("run-60", { limit = 20 }))
      assert.are.same(slice(want, 1, 20), ids_of(first.data))
      assert.are.equal(want[20], first.next_cursor)
      local items, pages = collect(c:call_results("run-60", { starting_after = first.next_cursor }))
      assert.are.same(slice(want, 21, 60), ids_of(items))
      assert.are.equal(1, pages[1].number, "a resumed iteration counts its pages from 1")
      assert.are.equal(first.next_cursor, pages[1].cursor, "page.cursor is the cursor the page was fetched with")
      -- after the last item there is nothing: one request, no items
      api.reset()
      assert.are.equal(0, #collect(c:call_results("run-60", { starting_after = want[60] })))
      assert.are.equal(1, api.stats("run-60").requests)
    end)

    it("re-reads the current page with starting_after = page.cursor", function()
      local c = new_client()
      local p1 = assert(c:call_results_page("run-60", { limit = 20 }))
      local p2 = assert(c:call_results_page("run-60", { limit = 20, starting_after = p1.next_cursor }))
      assert.are.equal(p1.next_cursor, p2.cursor)
      local again = assert(c:call_results_page("run-60", { limit = 20, starting_after = p2.cursor }))
      assert.are.same(ids_of(p2.data), ids_of(again.data))
    end)

    it("walks backward with ending_before: last item first, toward the start, nothing twice", function()
      local want = run60_ids()
      api.reset()
      local items, pages = collect(new_client():call_results("run-60", { limit = 10, ending_before = want[45] }))
      -- the 44 items before item 45, in the direction of travel
      assert.are.same(reversed(slice(want, 1, 44)), ids_of(items))
      assert.are.equal(5, #pages, "44 items in pages of 10")
      local cursors = {}
      for n, page in ipairs(pages) do
        local hi = 44 - (n - 1) * 10
        local lo = math.max(1, hi - 9)
        local on_page = ids_of(page.data)
        table.sort(on_page)
        local expected = slice(want, lo, hi)
        table.sort(expected)
        assert.are.same(expected, on_page, "page " .. n .. " holds items " .. lo .. ".." .. hi)
        assert.are.equal(n, page.number)
        assert.are.equal(n < 5, page.has_more, "page " .. n .. " has_more")
        cursors[n] = page.cursor
      end
      assert.are.same({ want[45], want[35], want[25], want[15], want[5] }, cursors,
        "each page is fetched ending before the first item of the previous one")
      local stats = api.stats("run-60")
      assert.are.equal(5, stats.requests)
      for i, p in ipairs(stats.paths) do
        local _, params = parse_path(p)
        assert.is_nil(params.starting_after, "a backward walk never sends starting_after: " .. p)
        assert.are.equal(cursors[i], params.ending_before, p)
        assert.are.equal("10", params.limit, p)
      end
    end)

    it("walks backward over opaque cursors (tokens that are not item ids)", function()
      local want = run60_ids()                     -- opaque-60 has the same items as run-60
      local run = uniq("opaque-60")
      local c = new_client()
      local p1 = assert(c:call_results_page(run, { limit = 25 }))
      local p2 = assert(c:call_results_page(run, { limit = 25, starting_after = p1.next_cursor }))
      assert.are_not.equal(want[50], p2.next_cursor, "opaque-60 cursors are tokens")
      local ok, items = pcall(collect, c:call_results(run, { limit = 10, ending_before = p2.next_cursor }))
      assert.is_true(ok, "backward iteration of " .. run .. " failed: " .. tostring(items))
      assert.are.same(reversed(slice(want, 1, 49)), ids_of(items))
    end)

    it("follows opaque next_cursor tokens forward (escaping '=' and '/' in the query)", function()
      local want = run60_ids()
      local run = uniq("opaque-60")
      local items, pages = collect(new_client({ page_size = 25 }):call_results(run))
      assert.are.same(want, ids_of(items))
      assert.are.equal(3, #pages)
      assert.are.equal(3, api.stats(run).requests)
    end)

    it("checks and copies the params once: the caller's table is never changed or read again", function()
      local c = new_client()
      local params = { limit = 10, include_agent_results = true }
      local f, s, ctl = c:call_results("run-30", params)
      params.limit, params.starting_after, params.bogus = 50, "nope", 1
      local items = collect(f, s, ctl)
      assert.are.equal(30, #items)
      assert.are.same({ limit = 50, include_agent_results = true, starting_after = "nope", bogus = 1 }, params)
      local page_params = { limit = 5 }
      assert(c:call_results_page("run-30", page_params))
      assert.are.same({ limit = 5 }, page_params)
      local stats = api.stats("run-30")
      assert.are.equal(4, stats.requests)
      for i = 1, 3 do
        local _, sent = parse_path(stats.paths[i])
        assert.are.equal("10", sent.limit, stats.paths[i])
        assert.are.equal("true", sent.include_agent_results, stats.paths[i])
      end
    end)

    it("ends at once on an empty run (run-0): no item, one request", function()
      local items = collect(new_client():call_results("run-0"))
      assert.are.equal(0, #items)
      assert.are.equal(1, api.stats("run-0").requests)
    end)

    it("runs two iterations of one client interleaved, each complete and in order", function()
      local c = new_client({ page_size = 10 })
      local f1, s1 = c:call_results("run-30")
      local f2, s2 = c:call_results("run-31")
      local a, b = {}, {}
      while true do
        local x, y = f1(s1), f2(s2)
        if x then a[#a + 1] = x.id end
        if y then b[#b + 1] = y.id end
        if not x and not y then break end
      end
      assert.are.same(ids_of(assert(new_client():call_results_page("run-30", { limit = 100 })).data), a)
      assert.are.same(ids_of(assert(new_client():call_results_page("run-31", { limit = 100 })).data), b)
    end)
  end)

  describe("items", function()
    it("has every documented field of call results and agent results, with its type", function()
      local nulls, n = {}, 0
      for r in new_client():call_results("run-100", { include_agent_results = true }) do
        check_call_result(r, "run-100", false, nulls)
        n = n + 1
      end
      assert.are.equal(100, n)
      -- the run has nulls, so the absent-field branch was exercised
      assert.is_true((nulls.call_display_name or 0) > 0, "some call_display_name is null")
      assert.is_true((nulls.completed_at or 0) > 0, "some completed_at is null")
      assert.is_true((nulls.failure_code or 0) > 0, "some failure_code is null")
    end)

    if IS_54 then                                   -- LuaJIT has only doubles
      it("on Lua 5.4 gives integers for counts, ms and tokens and floats for scores", function()
        local ints, floats = 0, 0
        for r in new_client():call_results("run-60", { include_agent_results = true }) do
          assert.are.equal("integer", math.type(r.failed_agent_count))
          assert.are.equal("integer", math.type(r.insufficient_evidence_agent_count))
          if r.overall_score_normalized_0_100 then
            assert.are.equal("float", math.type(r.overall_score_normalized_0_100), r.id .. " overall score")
            floats = floats + 1
          end
          for _, a in ipairs(r.agent_results) do
            if a.score_normalized_0_100 then
              assert.are.equal("float", math.type(a.score_normalized_0_100), a.id .. " score")
              floats = floats + 1
            end
            if a.audit.input_tokens then
              assert.are.equal("integer", math.type(a.audit.input_tokens), a.id .. " input_tokens")
              ints = ints + 1
            end
            if a.audit.latency_ms then
              assert.are.equal("integer", math.type(a.audit.latency_ms), a.id .. " latency_ms")
            end
            for _, e in ipairs(a.evidence) do
              if e.start_ms then assert.are.equal("integer", math.type(e.start_ms)) end
            end
          end
        end
        assert.is_true(ints > 0 and floats > 0, "the run has scores and token counts")
      end)
    end

    it("leaves null fields absent by default and gives blandeval.null with keep_nulls = true", function()
      local plain = collect(new_client():call_results("run-60", { include_agent_results = true }))
      local nulls = {}
      local kept = {}
      for r in new_client({ keep_nulls = true }):call_results("run-60", { include_agent_results = true }) do
        check_call_result(r, "run-60", true, nulls)
        kept[#kept + 1] = r
      end
      assert.are.equal(60, #kept)
      local compared = 0
      for i, r in ipairs(kept) do
        assert.are.equal(r.id, plain[i].id)
        for field in pairs(SCHEMA.call_result) do
          local a, b = plain[i][field], r[field]
          assert.are.equal(b == blandeval.null, a == nil,
            "item " .. i .. " field " .. field .. ": null with keep_nulls iff absent without")
          if b == blandeval.null then compared = compared + 1 end
        end
      end
      assert.is_true(compared > 0, "run-60 has null fields")
      assert.is_true(next(nulls) ~= nil)
    end)

    it("echoes the run id in every item (eval_run_id)", function()
      for r in new_client():call_results("run-7") do
        assert.are.equal("run-7", r.eval_run_id)
      end
    end)
  end)

  describe("agent snapshots", function()
    it("iterates the run's agents, one page, each with its documented fields", function()
      local snaps, pages = collect(new_client():agent_snapshots("run-60"))
      assert.are.equal(3, #snaps)
      assert.are.equal(1, #pages)
      local page = pages[1]
      assert.are.equal(1, page.number)
      assert.is_false(page.has_more)
      assert.is_nil(page.cursor)
      assert.matches("^req_%d+$", page.request_id)
      local nulls = {}
      for i, s in ipairs(snaps) do
        check_object(s, "snapshot", "snapshot " .. i, false, nulls)
        assert.are.equal(i - 1, s.position)
        assert.are.equal("run-60", s.eval_run_id)
        for k, lv in ipairs(s.levels) do check_object(lv, "level", "snapshot " .. i .. " level " .. k, false, nulls) end
        for _, key in ipairs(s.target_level_keys) do assert.is_string(key) end
      end
      local stats = api.stats("run-60")
      assert.are.equal(1, stats.requests)
      assert.are.same({ "/v1/evals/runs/run-60/agent-snapshots" }, stats.paths)
    end)

    it("agent_snapshots_page returns the page, and agent results point at its snapshots", function()
      local c = new_client()
      local page = assert(c:agent_snapshots_page("run-60"))
      assert.are.equal(3, #page.data)
      assert.are.equal(1, page.number)
      local ids = {}
      for _, s in ipairs(page.data) do ids[s.id] = true end
      local n = 0
      for r in c:call_results("run-60", { include_agent_results = true }) do
        for _, a in ipairs(r.agent_results) do
          assert.is_true(ids[a.eval_run_agent_snapshot_id], a.id .. " names a snapshot of the run")
          n = n + 1
        end
      end
      assert.is_true(n > 0)
    end)

    it("agent_snapshots_page returns nil, err for an unknown run", function()
      local page, err = new_client():agent_snapshots_page("nope")
      assert.is_nil(page)
      assert.are.equal("api", err.kind)
      assert.are.equal(404, err.status)
      assert.are.equal("EVAL_RUN_NOT_FOUND", err.code)
    end)
  end)

  describe("call_results_page", function()
    it("returns one page: number 1, its cursor, has_more and next_cursor", function()
      local want = run60_ids()
      local c = new_client()
      local page, err = c:call_results_page("run-60", { limit = 25, starting_after = want[10] })
      assert.is_nil(err)
      assert.are.same(slice(want, 11, 35), ids_of(page.data))
      assert.are.equal(1, page.number)
      assert.are.equal(want[10], page.cursor)
      assert.is_true(page.has_more)
      assert.are.equal(want[35], page.next_cursor)
      assert.are.equal("COMPLETE", page.run_status)
      assert.are.equal(60, page.run_resolved_call_count)
      assert.matches("^req_%d+$", page.request_id)
    end)

    it("returns nil and an error value on failure", function()
      local page, err = new_client():call_results_page("nope", { limit = 5 })
      assert.is_nil(page)
      assert.is_table(err)
      assert.are.equal("api", err.kind)
      assert.are.equal(404, err.status)
    end)
  end)

  describe("failed_call_results", function()
    it("yields exactly the items with failed_agent_count > 0, in order, with their page", function()
      local c = new_client({ page_size = 50 })
      local all = collect(c:call_results("run-250", { include_agent_results = true }))
      local want = {}
      for _, r in ipairs(all) do
        if r.failed_agent_count > 0 then want[#want + 1] = r.id end
      end
      assert.is_true(#want > 0 and #want < #all, "run-250 has failed and clean calls")
      local got = {}
      for r, page in c:failed_call_results("run-250", { include_agent_results = true }) do
        got[#got + 1] = r.id
        local failed = 0
        for _, a in ipairs(r.agent_results) do if a.failed then failed = failed + 1 end end
        assert.are.equal(r.failed_agent_count, failed, r.id .. ": its failed agent results")
        local on_page = false
        for _, x in ipairs(page.data) do if rawequal(x, r) then on_page = true end end
        assert.is_true(on_page, r.id .. " is on the page given with it")
      end
      assert.are.same(want, got)
      -- without agent results the counts still select the same calls
      local bare = {}
      for r in c:failed_call_results("run-250") do bare[#bare + 1] = r.id end
      assert.are.same(want, bare)
    end)
  end)

  describe("connections and compression", function()
    it("reads run-250 in 10 requests of 25 over one connection #curl", function()
      local items = collect(new_client({ page_size = 25 }):call_results("run-250"))
      assert.are.equal(250, #items)
      local seen = {}
      for _, r in ipairs(items) do
        assert.is_nil(seen[r.id], "id " .. r.id .. " twice")
        seen[r.id] = true
      end
      local stats = api.stats("run-250")
      assert.are.equal(10, stats.requests)
      assert.are.equal(1, stats.connections, "one connection for the whole iteration")
    end)

    it("keeps the connection across iterations and methods of one client #curl", function()
      local c = new_client({ page_size = 20 })
      collect(c:call_results("run-60"))
      assert(c:call_results_page("run-60", { limit = 3 }))
      collect(c:agent_snapshots("run-60"))
      local stats = api.stats("run-60")
      assert.are.equal(5, stats.requests)
      assert.are.equal(1, stats.connections)
    end)

    -- The fake API does not report request headers: start a second instance whose extra
    -- server block logs them (same handler), and read the log.
    it("asks for gzip, gets a compressed body, and sends its user agent and accept header #curl", function()
      local port
      local ok, socket = pcall(require, "socket")
      if ok then
        local srv = assert(socket.bind("127.0.0.1", 0))
        port = select(2, srv:getsockname())
        srv:close()
      else
        port = 20000 + os.time() % 20000
      end
      local dir = sh("mktemp -d \"${TMPDIR:-/tmp}/blandlog.XXXXXX\""):match("^%s*(.-)%s*$")
      local log = dir .. "/access.log"
      local conf = "log_format blandlog '$request_uri\\t$http_accept_encoding\\t"
        .. "$sent_http_content_encoding\\t$body_bytes_sent\\t$http_user_agent\\t$http_accept'; "
        .. "server { listen 127.0.0.1:" .. port .. "; access_log " .. log .. " blandlog; "
        .. "location / { content_by_lua_block { require('fakeapi.handler').handle() } } }"
      finally(function()
        sh("sh " .. q(fakeapi.script) .. " stop " .. q(dir) .. " >/dev/null 2>&1")
        os.execute("rm -rf " .. q(dir))
      end)
      local out = sh("FAKEAPI_EXTRA_CONF=" .. q(conf) .. " sh " .. q(fakeapi.script) .. " start " .. q(dir) .. " 2>&1")
      assert.truthy(out:find("BASE_URL=", 1, true), "logging fake API did not start:\n" .. out)
      local base = "http://127.0.0.1:" .. port
      local query = "/v1/evals/runs/run-100/call-results?include_agent_results=true&limit=100"
      local page = assert(blandeval.new({ api_key = "test-key", base_url = base })
        :call_results_page("run-100", { include_agent_results = true, limit = 100 }))
      assert.are.equal(100, #page.data, "the compressed page decodes to all its items")
      assert(blandeval.new({ api_key = "test-key", base_url = base, user_agent = "custom-agent/9" })
        :call_results_page("run-5"))
      sh("curl -s -o /dev/null -H 'authorization: test-key' " .. q(base .. query))   -- identity
      local plain_page = assert(blandeval.new({ api_key = "test-key", base_url = base, compress = false })
        :call_results_page("run-100", { include_agent_results = true, limit = 100 }))
      assert.are.same(page.data, plain_page.data)
      local lines
      for _ = 1, 50 do
        lines = {}
        local f = io.open(log)
        if f then
          for line in f:lines() do lines[#lines + 1] = line end
          f:close()
        end
        if #lines >= 4 then break end
        sh("sleep 0.02")
      end
      assert.are.equal(4, #lines, "four logged requests:\n" .. table.concat(lines, "\n"))
      local function fields(line)
        local t = {}
        for v in (line .. "\t"):gmatch("([^\t]*)\t") do t[#t + 1] = v end
        return t
      end
      local mine, custom, curl = fields(lines[1]), fields(lines[2]), fields(lines[3])
      assert.are.equal(query, mine[1])
      assert.matches("gzip", mine[2], nil, true, "the client sends Accept-Encoding with gzip")
      assert.are.equal("gzip", mine[3], "the page came gzip-compressed")
      assert.are.equal("-", curl[3], "curl without --compressed got it plain")
      local uncompressed = fields(lines[4])
      assert.are.equal("-", uncompressed[2], "compress = false sends no Accept-Encoding")
      assert.are.equal("-", uncompressed[3], "and gets the body plain")
      local zipped, plain = tonumber(mine[4]), tonumber(curl[4])
      assert.is_true(zipped * 2 < plain, "compressed " .. zipped .. " bytes vs plain " .. plain)
      local vm = jit and jit.version or _VERSION
      assert.are.equal(1, mine[5]:find("blandeval/" .. blandeval._VERSION .. " (libcurl/", 1, true),
        "default user agent: " .. mine[5])
      assert.truthy(mine[5]:find("; " .. vm .. ")", 1, true), "default user agent names the VM: " .. mine[5])
      assert.are.equal("application/json", mine[6])
      assert.are.equal("custom-agent/9", custom[5])
    end)
  end)

  it("failed_call_results works with keep_nulls = true too", function()
    local plain, kept = 0, 0
    for _ in new_client():failed_call_results("run-250") do plain = plain + 1 end
    for r in new_client({ keep_nulls = true }):failed_call_results("run-250") do
      kept = kept + 1
      assert.is_true(r.failed_agent_count > 0)
    end
    assert.is_true(plain > 0)
    assert.are.equal(plain, kept)
  end)

  describe("closing", function()
    it("survives a break and a garbage collection; the client keeps working", function()
      local c = new_client({ page_size = 10, prefetch = false })   -- an aborted prefetch drops its connection
      for _ = 1, 3 do
        local n = 0
        for _ in c:call_results("run-60") do
          n = n + 1
          if n == 5 then break end
        end
        collectgarbage()
        collectgarbage()
      end
      local items = collect(c:call_results("run-60"))
      assert.are.equal(60, #items)
      if not ngx then assert.are.equal(1, api.stats("run-60").connections) end   -- nginx pools its own
    end)

    it("keeps its client alive while iterating, through garbage collections", function()
      local n = 0
      for r in new_client({ page_size = 10 }):call_results("run-60") do   -- no other reference
        collectgarbage()
        n = n + 1
        assert.is_string(r.id)
      end
      assert.are.equal(60, n)
      for _ = 1, 20 do new_client() end                                  -- dropped unclosed
      collectgarbage()
      collectgarbage()
      assert(new_client():call_results_page("run-5"))
    end)

    it("iterator:close() on the state value makes further steps raise 'closed'", function()
      local c = new_client({ page_size = 10, prefetch = false })
      local f, it = c:call_results("run-60")
      assert.is_table(f(it))
      it:close()
      it:close()                                   -- closing twice is fine
      local ok, err = pcall(f, it)
      assert.is_false(ok, "a step after close must raise")
      assert.matches("closed", tostring(err))
      assert.are.equal(1, api.stats("run-60").requests, "no request after close")
      local ff, fit = c:failed_call_results("run-60")
      fit:close()
      assert.is_false((pcall(ff, fit)))
    end)

    it("returns the iterator as the loop's 4th (to-be-closed) value", function()
      local c = new_client()
      for _, method in ipairs { "call_results", "failed_call_results", "agent_snapshots" } do
        local f, s, ctl, closing = c[method](c, "run-5")
        assert.is_function(f, method)
        assert.is_nil(ctl, method)
        assert.is_true(rawequal(s, closing), method .. ": the closing value is the state")
        s:close()
      end
    end)

    if IS_54 then
      it("on Lua 5.4 closes the iterator when the loop is left by break or by an error", function()
        local c = new_client({ page_size = 10, prefetch = false })
        local f, s, ctl, closing = c:call_results("run-60")
        local n = 0
        for _ in f, s, ctl, closing do
          n = n + 1
          if n == 3 then break end
        end
        local ok, err = pcall(f, s)
        assert.is_false(ok, "the for loop's break must have closed the iterator")
        assert.matches("closed", tostring(err))

        local f2, s2, c2, cl2 = c:call_results("run-60")
        assert.is_false((pcall(function()
          for _ in f2, s2, c2, cl2 do error("boom") end
        end)))
        assert.is_false((pcall(f2, s2)), "an error in the loop body must have closed the iterator")
        assert.are.equal(2, api.stats("run-60").requests, "no request after either loop ended")

        local f3, s3, c3, cl3 = c:failed_call_results("run-60")
        for _ in f3, s3, c3, cl3 do break end
        assert.is_false((pcall(f3, s3)), "failed_call_results: break must have closed the iterator")
      end)

      it("on Lua 5.4 `local client <close>` closes the client at the end of its scope", function()
        local chunk = assert(load([[
          local blandeval, opts, run = ...
          local outer
          do
            local c <close> = blandeval.new(opts)
            outer = c
            assert(c:call_results_page(run))
          end
          return outer
        ]], "=close_scope", "t"))
        local c = chunk(blandeval, { api_key = "test-key", base_url = api.base_url }, "run-5")
        assert.are.equal("blandeval.client (closed)", tostring(c))
        local ok, err = pcall(c.call_results_page, c, "run-5")
        assert.is_false(ok)
        assert.matches("closed", tostring(err))
        assert.are.equal(1, api.stats("run-5").requests)
      end)
    end

    it("client:close() makes every method raise 'closed' and sends nothing more", function()
      local c = new_client()
      assert(c:call_results_page("run-5"))
      c:close()
      c:close()                                    -- twice is fine
      assert.are.equal("blandeval.client (closed)", tostring(c))
      local calls = {
        call_results = function() return c:call_results("run-5") end,
        failed_call_results = function() return c:failed_call_results("run-5") end,
        agent_snapshots = function() return c:agent_snapshots("run-5") end,
        call_results_page = function() return c:call_results_page("run-5") end,
        agent_snapshots_page = function() return c:agent_snapshots_page("run-5") end,
      }
      for name, call in pairs(calls) do
        local ok, err = pcall(call)
        assert.is_false(ok, name .. " on a closed client must raise")
        assert.matches("closed", tostring(err), nil, true, name)
      end
      assert.are.equal(1, api.stats("run-5").requests)
    end)

    it("an iteration whose client was closed raises 'closed' at its next request", function()
      local c = new_client({ page_size = 10, prefetch = false })
      local f, s = c:call_results("run-60")
      assert.is_table(f(s))
      c:close()
      local ok, err = pcall(function()
        local n = 1
        while f(s) do n = n + 1 end
        return n
      end)
      assert.is_false(ok, "the next page cannot be fetched with a closed client")
      assert.matches("closed", tostring(err))
      assert.are.equal(1, api.stats("run-60").requests)
    end)
  end)

  describe("environment", function()
    -- a fresh interpreter with a controlled environment
    local function lua_with_env(env, code)
      local interp = arg and arg[-1] or (jit and "luajit" or "lua5.4")
      return sh("env -u BLAND_API_KEY -u BLAND_BASE_URL " .. env .. " LUA_PATH=" .. q(package.path)
        .. " LUA_CPATH=" .. q(package.cpath) .. " " .. q(interp) .. " -e " .. q(code) .. " 2>&1")
    end

    it("takes the key from BLAND_API_KEY and the URL from BLAND_BASE_URL", function()
      local run = other_run()
      local out = lua_with_env("BLAND_API_KEY=test-key BLAND_BASE_URL=" .. q(api.base_url), [[
        local c = require("blandeval").new()
        local page, err = c:call_results_page("]] .. run .. [[")
        print(page and "items=" .. #page.data or "err=" .. tostring(err))
      ]])
      assert.matches("items=3", out, nil, true)
      assert.are.same({ "test-key" }, api.stats(run).auth)
    end)

    it("refuses to start without a key: no api_key and BLAND_API_KEY unset", function()
      local out = lua_with_env("", [[
        local ok, err = pcall(require("blandeval").new, { base_url = "http://127.0.0.1:9" })
        print(ok, err)
      ]])
      assert.matches("^false", out)
      assert.matches("bad argument #1 to 'new'", out, nil, true)
      assert.matches("no API key", out, nil, true)
    end)

    it("prefers the api_key option to BLAND_API_KEY", function()
      local run = other_run()
      local out = lua_with_env("BLAND_API_KEY=env-key", [[
        local c = require("blandeval").new{ api_key = "test-key", base_url = "]] .. api.base_url .. [[" }
        print(c:call_results_page("]] .. run .. [[") and "ok" or "failed")
      ]])
      assert.matches("ok", out, nil, true)
      assert.are.same({ "test-key" }, api.stats(run).auth)
    end)

    it("strips trailing slashes from base_url", function()
      local c = new_client({ base_url = api.base_url .. "//" })
      assert(c:call_results_page("run-5"))
      assert.are.same({ "/v1/evals/runs/run-5/call-results" }, api.stats("run-5").paths)
    end)
  end)
end)
