-- The `blandeval` command line (bin/blandeval, lua/blandeval/cli.lua, lua/blandeval/output.lua),
-- run as a real process of the interpreter this spec runs in (lua5.4 or luajit) against the
-- fake Bland API (spec/support/fakeapi). Every expectation is computed here, from the items
-- the library returns for the same run or from the raw fields, never from the CLI's code.
local blandeval = require "blandeval"
local fakeapi = require "fakeapi"
local shell = require "shell"

local q = shell.q
local LUA = jit and "luajit" or "lua5.4"
-- the build this run loaded (build/lua5.4, build/luajit, make sanitize's), for the CLI too
local BUILD = assert(package.searchpath("blandeval.core", package.cpath)):match("^(.*)/blandeval/core%.so$")
local IS_54 = math.type ~= nil
local NULL = blandeval.null

local api, client

---------------------------------------------------------------------------------------------
-- Running the CLI

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

-- cli(args [, o]) -> { out =, err =, status = }
-- args: list of arguments (quoted here); o.auth = false leaves out --base-url/--api-key;
-- o.env: extra "NAME=value" words; o.pipe: a shell pipeline stdout goes through;
-- o.wrap: a function(command) -> command (e.g. to run it under script(1)).
local function cli(args, o)
  o = o or {}
  local words = {}
  for i, a in ipairs(args) do words[i] = q(a) end
  if o.auth ~= false then
    words[#words + 1] = "--base-url=" .. q(api.base_url)
    words[#words + 1] = "--api-key"
    words[#words + 1] = "test-key"
  end
  local out, err = os.tmpname(), os.tmpname()
  local cmd = "env -u BLAND_API_KEY -u BLAND_BASE_URL LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
    .. "LUA_CPATH='" .. BUILD .. "/?.so;;' " .. (o.env or "") .. " " .. LUA .. " bin/blandeval "
    .. table.concat(words, " ")
  if o.wrap then cmd = o.wrap(cmd) end
  local line
  if o.pipe then
    line = cmd .. " 2>" .. q(err) .. " " .. o.pipe .. " >" .. q(out) .. "; echo \"rc=$?\""
  else
    line = cmd .. " >" .. q(out) .. " 2>" .. q(err) .. "; echo \"rc=$?\""
  end
  local res = shell.sh(line)
  local r = { out = slurp(out), err = slurp(err), status = tonumber(res:match("rc=(%d+)")) }
  os.remove(out)
  os.remove(err)
  return r
end

-- The records of a CSV text as Python's csv module reads them (an independent RFC 4180
-- reader), or nil when python3 is missing.
local function python_csv(text)
  if shell.sh("command -v python3") == "" then return nil end
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  local out = shell.sh("python3 -c 'import csv, json, sys; "
    .. "print(json.dumps(list(csv.reader(open(sys.argv[1], newline=\"\", encoding=\"utf-8\")))))' " .. q(path))
  os.remove(path)
  return assert(blandeval.decode(out), out)
end

local function lines_of(s)
  local out = {}
  for l in s:gmatch("([^\n]*)\n") do out[#out + 1] = l end
  return out
end

---------------------------------------------------------------------------------------------
-- An RFC 4180 reader: quoted fields, doubled quotes, CR/LF inside quotes, CRLF or LF records.

local function parse_csv(text)
  local records, fields, i, n = {}, {}, 1, #text
  local function field_end(c)
    return c == "," or c == "\r" or c == "\n" or c == ""
  end
  while i <= n do
    local value
    if text:sub(i, i) == '"' then
      local buf = {}
      i = i + 1
      while true do
        local j = text:find('"', i, true)
        assert(j, "CSV: unterminated quoted field")
        buf[#buf + 1] = text:sub(i, j - 1)
        if text:sub(j + 1, j + 1) == '"' then
          buf[#buf + 1] = '"'
          i = j + 2
        else
          i = j + 1
          break
        end
      end
      value = table.concat(buf)
      assert(field_end(text:sub(i, i)), "CSV: garbage after a quoted field at byte " .. i)
    else
      local j = i
      while j <= n and not field_end(text:sub(j, j)) do
        assert(text:sub(j, j) ~= '"', "CSV: quote inside an unquoted field at byte " .. j)
        j = j + 1
      end
      value = text:sub(i, j - 1)
      i = j
    end
    fields[#fields + 1] = value
    local c = text:sub(i, i)
    if c == "," then
      i = i + 1
      if i > n then fields[#fields + 1] = "" end
    else
      if c == "\r" then
        assert(text:sub(i + 1, i + 1) == "\n", "CSV: CR without LF at byte " .. i)
        i = i + 2
      elseif c == "\n" then
        i = i + 1
      end
      records[#records + 1] = fields
      fields = {}
    end
  end
  return records
end

---------------------------------------------------------------------------------------------
-- Expectations

local function collect(f, s, c)
  local items = {}
  for item in f, s, c do items[#items + 1] = item end
  return items
end

local function call_results(run_id, include)
  return collect(client:call_results(run_id, { include_agent_results = include or false }))
end

local function snapshots(run_id) return collect(client:agent_snapshots(run_id)) end

-- the CSV text of a scalar, computed here: "" for null, numbers read back by the test
local function same_scalar(field, v, where)
  if v == nil or v == NULL then
    assert.are.equal("", field, where)
  elseif type(v) == "number" then
    assert.is_truthy(tonumber(field), where .. ": not a number: " .. field)
    assert.are.equal(v, tonumber(field), where)
  elseif type(v) == "boolean" then
    assert.are.equal(tostring(v), field, where)
  else
    assert.are.equal(v, field, where)
  end
end

-- Deep equality that also tells integers from floats on Lua 5.4; path names the difference.
local function deep_equal(a, b, path)
  path = path or "$"
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) == "number" then
    if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    if IS_54 and math.type(a) ~= math.type(b) then return false, path .. ": integer vs float" end
    return true
  end
  if type(a) ~= "table" then
    if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    return true
  end
  for k, v in pairs(a) do
    local ok, why = deep_equal(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. ": missing on the left" end
  end
  return true
end

local function assert_same(a, b, what)
  local ok, why = deep_equal(a, b)
  assert(ok, (what or "values") .. " differ at " .. tostring(why))
end

-- display width in the terminal for the fake's strings: 4-byte characters (emoji) take 2
local function width(s)
  local w = 0
  for ch in s:gmatch("[%z\1-\127\194-\244][\128-\191]*") do w = w + (#ch == 4 and 2 or 1) end
  return w
end

local CALL_FIELDS = { "id", "org_id", "eval_run_id", "call_id", "call_display_name", "call_started_at",
  "call_duration_seconds", "call_ended_by", "transcript_snapshot_ref", "transcript_snapshot_expires_at",
  "status", "started_at", "completed_at", "overall_score_normalized_0_100", "text_score_normalized_0_100",
  "audio_score_normalized_0_100", "failed_agent_count", "insufficient_evidence_agent_count",
  "agent_results", "created_at" }

local function assert_usage_error(r, pattern)
  assert.are.equal(2, r.status)
  assert.are.equal("", r.out)
  local l = lines_of(r.err)
  assert.are.equal(2, #l, "stderr: " .. r.err)
  assert.is_truthy(l[1]:match("^blandeval"), r.err)
  if pattern then assert.is_truthy(l[1]:find(pattern, 1, true), l[1]) end
  assert.is_truthy(l[2]:find("try blandeval --help", 1, true), l[2])
end

local function assert_one_line_error(r, pattern)
  assert.are.equal(2, r.status, r.err)
  assert.are.equal("", r.out)
  local l = lines_of(r.err)
  assert.are.equal(1, #l, "stderr: " .. r.err)
  assert.is_truthy(l[1]:match("^blandeval: %S"), l[1])
  assert.is_falsy(l[1]:find("blandeval: blandeval:", 1, true), l[1])
  assert.is_falsy(r.err:find("traceback", 1, true), r.err)
  if pattern then assert.is_truthy(l[1]:find(pattern, 1, true), l[1]) end
end

---------------------------------------------------------------------------------------------

describe("blandeval CLI (" .. LUA .. ")", function()
  setup(function()
    api = fakeapi.start()
    client = blandeval.new { api_key = "test-key", base_url = api.base_url, keep_nulls = true }
  end)
  teardown(function()
    if client then client:close() end
    if api then api.stop() end
  end)

  describe("help and usage", function()
    it("--help and -h list every command and the global options", function()
      local r = cli({ "--help" }, { auth = false })
      assert.are.equal(0, r.status)
      assert.are.equal("", r.err)
      for _, c in ipairs { "calls", "verdicts", "snapshots", "report", "compare", "wait", "runs" } do
        assert.is_truthy(r.out:find("\n  " .. c .. " ", 1, true), "command " .. c)
      end
      for _, o in ipairs { "--api-key", "--base-url", "--timeout", "--help" } do
        assert.is_truthy(r.out:find(o, 1, true), o)
      end
      local h = cli({ "-h" }, { auth = false })
      assert.are.equal(0, h.status)
      assert.are.equal(r.out, h.out)
    end)

    it("COMMAND --help describes the command's own options", function()
      local expect = {
        calls = { "--failed", "--agent-results", "--format", "--limit" },
        verdicts = { "--format" }, snapshots = { "--format" }, report = {},
        compare = { "--threshold" }, wait = { "--interval", "--timeout" },
        runs = { "--status", "--triggered-by", "--format" },
      }
      for name, opts in pairs(expect) do
        local r = cli({ name, "--help" }, { auth = false })
        assert.are.equal(0, r.status)
        assert.are.equal("", r.err)
        assert.is_truthy(r.out:find("usage: blandeval " .. name, 1, true), name)
        for _, o in ipairs(opts) do assert.is_truthy(r.out:find(o, 1, true), name .. " " .. o) end
      end
      local a, b = cli({ "help", "compare" }, { auth = false }), cli({ "-h", "compare" }, { auth = false })
      assert.are.equal(a.out, b.out)
      assert.is_truthy(a.out:find("usage: blandeval compare", 1, true))
    end)

    it("a wrong command line: one line and a hint on stderr, exit 2", function()
      assert_usage_error(cli({}, { auth = false }), "missing command")
      assert_usage_error(cli({ "frobnicate", "run-3" }), "frobnicate")
      assert_usage_error(cli({ "calls", "run-3", "--frob" }), "--frob")
      assert_usage_error(cli({ "calls" }), "RUN_ID")
      assert_usage_error(cli({ "compare", "run-3" }), "RUN_B")
      assert_usage_error(cli({ "snapshots", "run-3", "run-4" }), "run-4")
      assert_usage_error(cli({ "calls", "run-3", "--format", "xml" }), "xml")
      assert_usage_error(cli({ "calls", "run-3", "--limit", "0" }), "--limit")
      assert_usage_error(cli({ "calls", "run-3", "--limit", "x" }), "--limit")
      assert_usage_error(cli({ "runs", "--failed" }), "--failed")
      assert_usage_error(cli({ "runs", "--status", "DONE" }), "DONE")
      assert_usage_error(cli({ "compare", "cmp-a-3", "cmp-b-3", "--threshold", "-1" }), "--threshold")
      assert_usage_error(cli({ "wait", "run-3", "--interval", "soon" }), "--interval")
      assert_usage_error(cli({ "calls", "run-3", "--format" }, { auth = false }), "--format")
      assert_usage_error(cli({ "calls", "run-3", "--failed=yes" }), "--failed")
    end)

    it("options go before or after the arguments, and before the command", function()
      local a = cli({ "--format", "csv", "calls", "run-7" })
      local b = cli({ "calls", "--format=csv", "run-7" })
      local c = cli({ "calls", "run-7", "--format", "csv" })
      assert.are.equal(0, a.status)
      assert.are.equal(a.out, b.out)
      assert.are.equal(a.out, c.out)
      assert.are.equal(8, #parse_csv(a.out))
    end)

    it("--version prints the library's version", function()
      local r = cli({ "--version" }, { auth = false })
      assert.are.equal(0, r.status)
      assert.are.equal("blandeval " .. blandeval._VERSION .. "\n", r.out)
    end)
  end)

  describe("calls", function()
    it("several runs: read together, each run's rows in its order, with a run column", function()
      local runs = { "run-45", "run-7", "run-120" }
      local r = cli({ "calls", runs[1], runs[2], runs[3], "--format", "csv" })
      assert.are.equal(0, r.status, r.err)
      local rec = parse_csv(r.out)
      local col
      for i, k in ipairs(rec[1]) do if k == "eval_run_id" then col = i end end
      local per = {}
      for i = 2, #rec do
        local id = rec[i][col]
        per[id] = per[id] or {}
        table.insert(per[id], rec[i][1])
      end
      local total = 0
      for _, id in ipairs(runs) do
        local want = {}
        for k, item in ipairs(call_results(id)) do want[k] = item.id end
        assert.are.same(want, per[id], id)
        total = total + #want
      end
      assert.are.equal(total + 1, #rec)
      local t = lines_of(cli({ "calls", "run-3", "run-4" }).out)
      assert.is_truthy(t[1]:match("^run%s+call_id%s+name"), t[1])
      assert.are.equal(1 + 3 + 4, #t)
      for i = 2, #t do assert.is_truthy(t[i]:match("^run%-[34]%s"), t[i]) end
      assert_usage_error(cli({ "calls", "run-3", "" }), "RUN_ID is empty")
    end)

    it("csv: documented scalar fields in order, every value as the library reads it", function()
      local items = call_results("run-250", true)
      local r = cli({ "calls", "run-250", "--format", "csv", "--agent-results" })
      assert.are.equal(0, r.status)
      assert.are.equal("", r.err)
      assert.is_truthy(r.out:find('""', 1, true), "a field with a quote was written quoted")
      local rec = parse_csv(r.out)
      local py = python_csv(r.out)
      if py then assert.are.same(py, rec, "python's csv module reads other records") end
      local header = {}
      for _, k in ipairs(CALL_FIELDS) do
        header[#header + 1] = k == "agent_results" and "agent_results_count" or k
      end
      assert.are.same(header, rec[1])
      assert.are.equal(#items + 1, #rec)
      for i, item in ipairs(items) do
        local row = rec[i + 1]
        assert.are.equal(#header, #row)
        for c, k in ipairs(header) do
          if k == "agent_results_count" then
            assert.are.equal(#item.agent_results, tonumber(row[c]))
            assert.is_true(#item.agent_results > 0 or item.status ~= "COMPLETE")
          else
            same_scalar(row[c], item[k], ("row %d %s"):format(i, k))
          end
        end
      end
    end)

    it("csv without --agent-results counts 0 agent results", function()
      local r = cli({ "calls", "run-12", "--format", "csv" })
      local rec = parse_csv(r.out)
      assert.are.equal(13, #rec)
      for i = 2, #rec do assert.are.equal("0", rec[i][19]) end
    end)

    it("jsonl: every field, nulls as null, [] for empty arrays, keys in documented order", function()
      local items = call_results("run-60", false)
      local r = cli({ "calls", "run-60", "--format", "jsonl" })
      assert.are.equal(0, r.status)
      assert.are.equal("", r.err)
      local l = lines_of(r.out)
      assert.are.equal(#items, #l)
      assert.are.equal("\n", r.out:sub(-1))
      local saw_null = false
      for i, line in ipairs(l) do
        assert.is_truthy(line:find('"agent_results":[]', 1, true), line)
        saw_null = saw_null or line:find(":null", 1, true) ~= nil
        local v = assert(blandeval.decode(line, { keep_nulls = true }))
        assert_same(items[i], v, "item " .. i)
        assert.are.equal("table", type(v.agent_results))
        assert.is_nil(next(v.agent_results))
        -- top-level keys in the documented order
        local last = 0
        for _, k in ipairs(CALL_FIELDS) do
          local at = line:find('"' .. k .. '":', 1, true)
          assert.is_truthy(at, k)
          assert.is_true(at > last, "key order at " .. k)
          last = at
        end
      end
      assert.is_true(saw_null)
    end)

    it("jsonl with --agent-results: the nested agent results, evidence and audit too", function()
      local items = call_results("run-40", true)
      local r = cli({ "calls", "run-40", "--agent-results", "--format", "jsonl" })
      assert.are.equal(0, r.status)
      local l = lines_of(r.out)
      assert.are.equal(#items, #l)
      local nested = 0
      for i, line in ipairs(l) do
        local v = assert(blandeval.decode(line, { keep_nulls = true }))
        assert_same(items[i], v, "item " .. i)
        nested = nested + #v.agent_results
      end
      assert.is_true(nested > 40)
      assert.is_truthy(r.out:find('"failure_code":null', 1, true))
      assert.is_truthy(r.out:find('"audit":{"prompt_version":', 1, true))
    end)

    it("--failed keeps the calls with failed agents; --limit stops after N rows", function()
      local failed = {}
      for _, item in ipairs(call_results("run-300")) do
        if type(item.failed_agent_count) == "number" and item.failed_agent_count > 0 then
          failed[#failed + 1] = item.id
        end
      end
      assert.is_true(#failed > 10)
      local r = cli({ "calls", "run-300", "--failed", "--format", "csv" })
      local rec = parse_csv(r.out)
      local got = {}
      for i = 2, #rec do got[#got + 1] = rec[i][1] end
      assert.are.same(failed, got)

      r = cli({ "calls", "run-300", "--failed", "--limit", "4", "--format", "csv" })
      rec = parse_csv(r.out)
      assert.are.equal(5, #rec)
      for i = 1, 4 do assert.are.equal(failed[i], rec[i + 1][1]) end
    end)

    it("--limit asks for one small page only", function()
      local items = call_results("run-500")
      api.reset()
      local r = cli({ "calls", "run-500", "--limit", "5", "--format", "jsonl" })
      assert.are.equal(0, r.status)
      local l = lines_of(r.out)
      assert.are.equal(5, #l)
      for i = 1, 5 do assert.are.equal(items[i].id, blandeval.decode(l[i]).id) end
      local st = api.stats("run-500")
      assert.are.equal(1, st.requests)
      assert.is_truthy(st.paths[1]:find("limit=5", 1, true), st.paths[1])
    end)

    it("table: aligned columns of call_id, name, status, overall score, failed agents", function()
      local items = call_results("run-30")
      local r = cli({ "calls", "run-30" })
      assert.are.equal(0, r.status)
      assert.are.equal("", r.err)
      local l = lines_of(r.out)
      assert.are.equal(#items + 1, #l)
      assert.is_truthy(l[1]:match("^call_id%s+name%s+status%s+overall_score%s+failed_agents$"), l[1])
      local status_col
      for i, item in ipairs(items) do
        local line = l[i + 1]
        local cells = {}
        for cell in (line .. "  "):gmatch("(.-)%s%s+") do cells[#cells + 1] = cell end
        assert.are.equal(5, #cells, line)
        assert.are.equal(item.call_id, cells[1])
        local name = item.call_display_name
        assert.are.equal(name == NULL and "-" or name, cells[2])
        assert.are.equal(item.status, cells[3])
        local score = item.overall_score_normalized_0_100
        assert.are.equal(score == NULL and "-" or ("%.1f"):format(score), cells[4])
        assert.are.equal(tostring(item.failed_agent_count), cells[5])
        -- the status column starts at the same terminal column on every row
        local at = line:find(item.status, #cells[1] + #cells[2] + 3, true)
        local col = width(line:sub(1, at - 1))
        status_col = status_col or col
        assert.are.equal(status_col, col, line)
      end
      assert.are.equal(status_col, width(l[1]:sub(1, l[1]:find("status", 1, true) - 1)))
    end)
  end)

  describe("verdicts", function()
    -- one expected row per agent result, joined to the snapshots here
    local function expected_verdicts(run_id)
      local snaps = {}
      for _, s in ipairs(snapshots(run_id)) do snaps[s.id] = s end
      local rows = {}
      for _, item in ipairs(call_results(run_id, true)) do
        for _, v in ipairs(item.agent_results) do
          local s = snaps[v.eval_run_agent_snapshot_id]
          local label, target = v.selected_level_label, v.is_target_match == true
          if #s.target_level_keys > 0 then
            target = false
            for _, k in ipairs(s.target_level_keys) do
              if k == v.selected_level_key then target = true end
            end
          end
          for _, lv in ipairs(s.levels) do
            if lv.level_key == v.selected_level_key then label = lv.label end
          end
          rows[#rows + 1] = { item = item, v = v, snap = s, label = label, target = target }
        end
      end
      return rows
    end

    it("csv: one row per verdict with the agent's name and level label", function()
      local want = expected_verdicts("run-45")
      local r = cli({ "verdicts", "run-45", "--format", "csv" })
      assert.are.equal(0, r.status)
      assert.are.equal("", r.err)
      local rec = parse_csv(r.out)
      assert.are.same({ "call_id", "call_result_id", "agent_result_id", "agent_key", "agent_name", "eval_agent_id",
        "level_key", "level_label", "is_target", "score_normalized_0_100", "is_insufficient_evidence", "failed",
        "failure_code", "failure_message" }, rec[1])
      assert.are.equal(#want + 1, #rec)
      local targets = 0
      for i, w in ipairs(want) do
        local row, v = rec[i + 1], w.v
        local where = "verdict " .. i
        same_scalar(row[1], w.item.call_id, where)
        same_scalar(row[2], w.item.id, where)
        same_scalar(row[3], v.id, where)
        same_scalar(row[4], w.snap.key, where)
        same_scalar(row[5], w.snap.name, where)
        same_scalar(row[6], w.snap.eval_agent_id, where)
        same_scalar(row[7], v.selected_level_key, where)
        same_scalar(row[8], w.label, where)
        same_scalar(row[9], w.target, where)
        same_scalar(row[10], v.score_normalized_0_100, where)
        same_scalar(row[11], v.is_insufficient_evidence, where)
        same_scalar(row[12], v.failed, where)
        same_scalar(row[13], v.failure_code, where)
        same_scalar(row[14], v.failure_message, where)
        if w.target then targets = targets + 1 end
      end
      assert.is_true(targets > 0 and targets < #want)
    end)

    it("jsonl: the whole agent result with its agent and level; table: one line each", function()
      local want = expected_verdicts("run-20")
      local r = cli({ "verdicts", "run-20", "--format", "jsonl" })
      assert.are.equal(0, r.status)
      local l = lines_of(r.out)
      assert.are.equal(#want, #l)
      for i, w in ipairs(want) do
        local o = assert(blandeval.decode(l[i], { keep_nulls = true }))
        assert_same(w.v, o.verdict, "verdict " .. i)
        assert.are.equal(w.item.call_id, o.call_id)
        assert.are.equal(w.snap.name, o.agent.name)
        assert.are.equal(w.snap.key, o.agent.key)
        assert.are.equal(w.target, o.is_target)
        if w.v.selected_level_key == NULL then assert.are.equal(NULL, o.level)
        else assert.are.equal(w.label, o.level.label) end
      end
      local t = cli({ "verdicts", "run-20", "--limit", "7" })
      local tl = lines_of(t.out)
      assert.are.equal(8, #tl)
      assert.is_truthy(tl[1]:match("^call_id%s+agent%s+level%s+target%s+score%s+failed%s+why$"), tl[1])
      for i = 1, 7 do
        local w = want[i]
        assert.are.equal(w.item.call_id, tl[i + 1]:match("^(%S+)"))
        assert.is_truthy(tl[i + 1]:find(w.snap.name, 1, true))
        assert.is_truthy(tl[i + 1]:match(w.target and "%s+yes%s" or "%s+no%s"), tl[i + 1])
        assert.is_truthy(tl[i + 1]:match(w.v.failed and "%s+yes%s+%S" or "%s+no%s+%-$"), tl[i + 1])
      end
    end)

    it("--failed: only the verdicts whose evaluation failed, each with its code and message", function()
      local want = {}
      for _, w in ipairs(expected_verdicts("run-250")) do
        if w.v.failed == true then want[#want + 1] = w end
      end
      assert.is_true(#want > 0)
      local r = cli({ "verdicts", "run-250", "--failed", "--format", "csv" })
      assert.are.equal(0, r.status, r.err)
      local rec = parse_csv(r.out)
      assert.are.equal(#want + 1, #rec)
      for i, w in ipairs(want) do
        same_scalar(rec[i + 1][3], w.v.id, "verdict " .. i)
        same_scalar(rec[i + 1][12], true, "verdict " .. i)
        same_scalar(rec[i + 1][13], w.v.failure_code, "verdict " .. i)
        same_scalar(rec[i + 1][14], w.v.failure_message, "verdict " .. i)
      end
      local t = lines_of(cli({ "verdicts", "run-250", "--failed", "--limit", "3" }).out)
      assert.are.equal(4, #t)
      for i = 1, 3 do
        local v = want[i].v
        local why = v.failure_code ~= NULL and v.failure_code or v.failure_message
        local cell = t[i + 1]:match("%syes%s+(.-)$") or ""
        assert.are.equal(why, cell:sub(1, #why), t[i + 1])
      end
    end)
  end)

  describe("snapshots", function()
    it("csv, jsonl and table against the library's snapshots", function()
      local newline = false
      for _, run_id in ipairs { "run-3", "run-4", "run-5", "run-6" } do
        local snaps = snapshots(run_id)
        local r = cli({ "snapshots", run_id, "--format", "csv" })
        assert.are.equal(0, r.status)
        local rec = parse_csv(r.out)
        local py = python_csv(r.out)
        if py then assert.are.same(py, rec, run_id .. ": python's csv module reads other records") end
        assert.are.same({ "id", "org_id", "eval_run_id", "eval_agent_id", "eval_agent_version_id", "position",
          "key", "name", "modality", "system_prompt_md", "prompt_md", "prompt_version", "level_keys",
          "target_level_keys", "weight", "created_at" }, rec[1])
        assert.are.equal(#snaps + 1, #rec)
        for i, s in ipairs(snaps) do
          local row = rec[i + 1]
          for c, k in ipairs(rec[1]) do
            if k == "level_keys" then
              local keys = {}
              for j, lv in ipairs(s.levels) do keys[j] = lv.level_key end
              assert.are.equal(table.concat(keys, ";"), row[c])
            elseif k == "target_level_keys" then
              assert.are.equal(table.concat(s.target_level_keys, ";"), row[c])
            else
              same_scalar(row[c], s[k], run_id .. " " .. k)
            end
          end
          newline = newline or s.system_prompt_md:find("\n", 1, true) ~= nil
        end
        local j = cli({ "snapshots", run_id, "--format", "jsonl" })
        local l = lines_of(j.out)
        assert.are.equal(#snaps, #l)
        for i, s in ipairs(snaps) do
          assert_same(s, assert(blandeval.decode(l[i], { keep_nulls = true })), run_id .. " snapshot " .. i)
          if #s.target_level_keys == 0 then
            assert.is_truthy(l[i]:find('"levels":[],', 1, true))
            assert.is_truthy(l[i]:find('"target_level_keys":[]', 1, true))
          end
        end
        local t = cli({ "snapshots", run_id })
        local tl = lines_of(t.out)
        assert.are.equal(#snaps + 1, #tl)
        for i, s in ipairs(snaps) do assert.is_truthy(tl[i + 1]:find(s.key, 1, true)) end
      end
      assert.is_true(newline, "a multi-line field went through the CSV")
    end)
  end)

  describe("report", function()
    it("overall lines, then per agent verdicts, hit rate, mean score, insufficient, failed and levels", function()
      local run_id = "run-300"
      local items, snaps = call_results(run_id, true), snapshots(run_id)
      local by_id, stats = {}, {}
      for i, s in ipairs(snaps) do
        by_id[s.id] = i
        stats[i] = { verdicts = 0, scored = 0, hits = 0, sum = 0, n = 0, insufficient = 0, failed = 0, levels = {} }
      end
      local failed_calls, insufficient_calls, score_sum, scored_calls = 0, 0, 0, 0
      for _, item in ipairs(items) do
        if item.failed_agent_count > 0 then failed_calls = failed_calls + 1 end
        if item.insufficient_evidence_agent_count > 0 or item.status == "INSUFFICIENT_EVIDENCE" then
          insufficient_calls = insufficient_calls + 1
        end
        if item.overall_score_normalized_0_100 ~= NULL then
          scored_calls = scored_calls + 1
          score_sum = score_sum + item.overall_score_normalized_0_100
        end
        for _, v in ipairs(item.agent_results) do
          local st = stats[by_id[v.eval_run_agent_snapshot_id]]
          st.verdicts = st.verdicts + 1
          if v.failed then st.failed = st.failed + 1 end
          if v.is_insufficient_evidence then st.insufficient = st.insufficient + 1 end
          if not v.failed and not v.is_insufficient_evidence then
            st.scored = st.scored + 1
            if v.is_target_match == true then st.hits = st.hits + 1 end
          end
          if v.score_normalized_0_100 ~= NULL then
            st.n, st.sum = st.n + 1, st.sum + v.score_normalized_0_100
          end
          if v.selected_level_key ~= NULL then
            st.levels[v.selected_level_key] = (st.levels[v.selected_level_key] or 0) + 1
          end
        end
      end

      local r = cli({ "report", run_id })
      assert.are.equal(0, r.status)
      assert.are.equal("", r.err)
      local l = lines_of(r.out)
      assert.is_truthy(l[1]:match("^run%s+run%-300"), l[1])
      assert.is_truthy(r.out:match("\ncalls%s+" .. #items .. "[:\n]"), r.out)
      assert.is_truthy(r.out:match("\nfailed calls%s+" .. failed_calls .. " "), r.out)
      assert.is_truthy(r.out:match("\ninsufficient%s+" .. insufficient_calls .. " "), r.out)
      assert.is_truthy(r.out:find(("\nmean score    %.1f\n"):format(score_sum / scored_calls), 1, true), r.out)

      local header
      for i, line in ipairs(l) do
        if line:match("^agent%s+verdicts%s+hit_rate%s+mean_score%s+insufficient%s+failed$") then header = i end
      end
      assert.is_truthy(header, r.out)
      for i, s in ipairs(snaps) do
        local st, row = stats[i], l[header + i]
        assert.are.equal(s.name, row:match("^(.-)%s%s+%d"), row)
        local v, hit, mean, ins, fl = row:match("(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)$")
        assert.are.equal(tostring(st.verdicts), v)
        assert.are.equal(("%.1f%%"):format(100 * st.hits / st.scored), hit)
        assert.are.equal(("%.1f"):format(st.sum / st.n), mean)
        assert.are.equal(tostring(st.insufficient), ins)
        assert.are.equal(tostring(st.failed), fl)
        -- its bar line: the level labels with their counts, 30 block characters
        local bar
        for _, line in ipairs(l) do
          if line:find(s.name, 1, true) == 1 and line:find("█", 1, true) then bar = line end
        end
        assert.is_truthy(bar, "bar of " .. s.name)
        local labels = {}
        for _, lv in ipairs(s.levels) do labels[lv.level_key] = lv.label end
        labels.pass, labels.fail = labels.pass or "Pass", labels.fail or "Fail"
        for key, n in pairs(st.levels) do
          assert.is_truthy(bar:find(" " .. labels[key] .. " " .. n, 1, true), bar .. " / " .. key)
        end
        local blocks = 0
        for _, block in ipairs { "█", "▓", "▒", "░", "▞", "▚", "▖", "▘" } do
          blocks = blocks + select(2, bar:gsub(block, ""))
        end
        local legend = 0
        for _ in pairs(st.levels) do legend = legend + 1 end
        if #s.levels > 0 then legend = #s.levels end
        assert.are.equal(30 + legend, blocks, bar)      -- the bar, plus one marker per legend entry
      end
    end)
  end)

  describe("compare", function()
    -- the changed verdicts and per-agent hit rates, from the raw agent results of both runs
    local function raw_compare(a, b)
      local function index(run_id)
        local calls, hits = {}, {}
        for _, item in ipairs(call_results(run_id, true)) do
          local per = {}
          calls[item.call_id] = per
          for _, v in ipairs(item.agent_results) do
            per[v.eval_agent_id] = v.selected_level_key
            local h = hits[v.eval_agent_id] or { hits = 0, scored = 0 }
            hits[v.eval_agent_id] = h
            if not v.failed and not v.is_insufficient_evidence then
              h.scored = h.scored + 1
              if v.is_target_match == true then h.hits = h.hits + 1 end
            end
          end
        end
        return calls, hits
      end
      local ca, ha = index(a)
      local cb, hb = index(b)
      local changed = {}
      for call_id, per in pairs(cb) do
        for agent, level in pairs(per) do
          local before = ca[call_id] and ca[call_id][agent]
          if before ~= nil and before ~= level then changed[#changed + 1] = call_id end
        end
      end
      return changed, ha, hb
    end

    it("flags the agent that got worse and lists the changed calls; exit 1", function()
      local changed, ha, hb = raw_compare("cmp-a-90", "cmp-b-90")
      assert.is_true(#changed > 0)
      local r = cli({ "compare", "cmp-a-90", "cmp-b-90" })
      assert.are.equal(1, r.status, r.err)
      assert.are.equal("", r.err)
      assert.is_truthy(r.out:find("changed verdicts: " .. #changed .. "\n", 1, true), r.out)
      for _, call_id in ipairs(changed) do
        assert.is_truthy(r.out:find("\n" .. call_id .. " ", 1, true), call_id)
      end
      assert.is_truthy(r.out:find("\nregression: yes", 1, true))
      local snaps = snapshots("cmp-a-90")
      local flagged = 0
      for _, s in ipairs(snaps) do
        local a, b = ha[s.eval_agent_id], hb[s.eval_agent_id]
        local delta = 100 * (b.hits / b.scored - a.hits / a.scored)
        local row
        for _, line in ipairs(lines_of(r.out)) do
          if line:find(s.name, 1, true) == 1 and line:find("%", 1, true) then row = line end
        end
        assert.is_truthy(row, s.name)
        assert.is_truthy(row:find(("%.1f%%"):format(100 * a.hits / a.scored), 1, true), row)
        assert.is_truthy(row:find(("%.1f%%"):format(100 * b.hits / b.scored), 1, true), row)
        assert.is_truthy(row:find(("%+.1f"):format(delta), 1, true), row)
        if delta < -5 then
          flagged = flagged + 1
          assert.is_truthy(row:find("REGRESSION", 1, true), row)
        end
      end
      assert.is_true(flagged >= 1)
    end)

    it("--limit N lists N changed verdicts and counts the rest", function()
      local changed = raw_compare("cmp-a-90", "cmp-b-90")
      assert.is_true(#changed > 3)
      local r = cli({ "compare", "cmp-a-90", "cmp-b-90", "--limit", "3" })
      assert.are.equal(1, r.status, r.err)
      local l = lines_of(r.out)
      local at
      for i, line in ipairs(l) do
        if line == "changed verdicts: " .. #changed then at = i end
      end
      assert.is_truthy(at, r.out)
      assert.is_truthy(l[at + 1]:match("^call_id%s+agent"), l[at + 1])
      for i = 2, 4 do assert.is_truthy(l[at + i]:match("^%x+%-%x+%-%x+%-%x+%-%x+ "), l[at + i]) end
      assert.are.equal("... and " .. (#changed - 3) .. " more", l[at + 5])
    end)

    it("exit 0 for a run against itself and under a wide threshold", function()
      local r = cli({ "compare", "cmp-a-30", "cmp-a-30" })
      assert.are.equal(0, r.status, r.err)
      assert.is_truthy(r.out:find("changed verdicts: 0\n", 1, true))
      assert.is_truthy(r.out:find("\nregression: no\n", 1, true))
      assert.is_falsy(r.out:find("REGRESSION", 1, true))
      r = cli({ "compare", "cmp-a-30", "cmp-b-30", "--threshold", "100", "--score-threshold", "100" })
      assert.are.equal(0, r.status, r.err)
      assert.is_truthy(r.out:find("\nregression: no\n", 1, true))
    end)

    it("an API error in either run: one line, exit 2", function()
      assert_one_line_error(cli({ "compare", "cmp-a-30", "no-such-run" }), "404")
    end)
  end)

  describe("wait", function()
    it("prints the statuses as the run moves on; exit 0 on COMPLETE", function()
      local r = cli({ "wait", "progress-6@cli1", "--interval", "0" })
      assert.are.equal(0, r.status, r.err)
      assert.are.equal("", r.err)
      local seen = {}
      for _, line in ipairs(lines_of(r.out)) do seen[#seen + 1] = line:match("progress%-6@cli1 (%u+)") end
      assert.are.same({ "PENDING", "QUEUED", "RUNNING", "RUNNING", "COMPLETE" }, seen)
      assert.is_truthy(r.out:find("18/18", 1, true), r.out)
    end)

    it("exit 1 when the run ends FAILED or CANCELLED, 0 for PARTIAL", function()
      local r = cli({ "wait", "progress-fail-3@cli2", "--interval", "0" })
      assert.are.equal(1, r.status, r.err)
      assert.are.equal("", r.err)
      assert.is_truthy(r.out:find("FAILED", 1, true))
      assert.is_truthy(r.out:find("JUDGE_PROVIDER_UNAVAILABLE", 1, true))
      r = cli({ "wait", "progress-cancel-3@cli3", "--interval", "0" })
      assert.are.equal(1, r.status, r.err)
      assert.is_truthy(r.out:find("CANCELLED", 1, true))
      r = cli({ "wait", "partial-40" })
      assert.are.equal(0, r.status, r.err)
      assert.is_truthy(r.out:find("PARTIAL", 1, true))
    end)

    it("exit 2 on a timeout and on an API error, with one line", function()
      local t0 = os.time()
      local r = cli({ "wait", "progress-6@cli4", "--interval", "5", "--timeout", "1" })
      assert.are.equal(2, r.status)
      assert.is_true(os.time() - t0 <= 3)
      local l = lines_of(r.err)
      assert.are.equal(1, #l, r.err)
      assert.is_truthy(l[1]:find("^blandeval: timeout"), l[1])
      assert.is_truthy(r.out:find("PENDING", 1, true))
      assert_one_line_error(cli({ "wait", "no-such-run", "--interval", "0" }), "404")
    end)
  end)

  describe("runs", function()
    it("jsonl: the run list as the library reads it", function()
      local runs = collect(client:runs())
      assert.is_true(#runs > 10)
      local r = cli({ "runs", "--format", "jsonl" })
      assert.are.equal(0, r.status, r.err)
      local l = lines_of(r.out)
      assert.are.equal(#runs, #l)
      for i, run in ipairs(runs) do
        assert_same(run, assert(blandeval.decode(l[i], { keep_nulls = true })), "run " .. i)
      end
      assert.is_truthy(r.out:find('"metadata":{}', 1, true))
    end)

    it("--status and --triggered-by filter, --limit stops; csv and table", function()
      local want = collect(client:runs { status = "COMPLETE", triggered_by = "auto" })
      assert.is_true(#want > 2)
      local r = cli({ "runs", "--status", "COMPLETE", "--triggered-by", "auto", "--format", "csv" })
      assert.are.equal(0, r.status, r.err)
      local rec = parse_csv(r.out)
      assert.are.equal(#want + 1, #rec)
      assert.are.equal("id", rec[1][1])
      local col = {}
      for c, k in ipairs(rec[1]) do col[k] = c end
      for i, run in ipairs(want) do
        local row = rec[i + 1]
        same_scalar(row[col.id], run.id, "id")
        same_scalar(row[col.status], "COMPLETE", "status")
        same_scalar(row[col.triggered_by], "auto", "triggered_by")
        same_scalar(row[col.resolved_call_count], run.resolved_call_count, "resolved_call_count")
        same_scalar(row[col.summary_overall_score_mean], run.summary.overall_score_mean, "score mean")
        same_scalar(row[col.created_at], run.created_at, "created_at")
      end
      local t = cli({ "runs", "--limit", "3" })
      local tl = lines_of(t.out)
      assert.are.equal(4, #tl)
      local all = collect(client:runs())
      for i = 1, 3 do assert.are.equal(all[i].id, tl[i + 1]:match("^(%S+)")) end
    end)
  end)

  describe("errors", function()
    it("a run that does not exist: one line, exit 2", function()
      for _, fmt in ipairs { "table", "csv", "jsonl" } do
        local r = cli({ "calls", "no-such-run", "--format", fmt })
        assert_one_line_error(r, "api error, HTTP 404 EVAL_RUN_NOT_FOUND")
      end
      assert_one_line_error(cli({ "report", "no-such-run" }), "HTTP 404")
      assert_one_line_error(cli({ "verdicts", "no-such-run" }), "HTTP 404")
      assert_one_line_error(cli({ "snapshots", "no-such-run" }), "HTTP 404")
    end)

    it("a wrong key: one line that does not show the key, exit 2", function()
      local r = cli({ "calls", "run-3", "--base-url", api.base_url, "--api-key", "wrong-key-1234" }, { auth = false })
      assert_one_line_error(r, "HTTP 401")
      assert.is_falsy(r.err:find("wrong-key-1234", 1, true))
    end)

    it("a refused connection: one line, exit 2", function()
      local r = cli({ "runs", "--base-url", "http://127.0.0.1:1", "--api-key", "test-key", "--retries", "0" },
        { auth = false })
      assert_one_line_error(r, "network error")
    end)

    it("the key and base URL come from the environment; no key at all is an error", function()
      local r = cli({ "calls", "run-3", "--format", "csv" },
        { auth = false, env = "BLAND_API_KEY=test-key BLAND_BASE_URL=" .. q(api.base_url) })
      assert.are.equal(0, r.status, r.err)
      assert.are.equal(4, #parse_csv(r.out))
      r = cli({ "calls", "run-3" }, { auth = false, env = "BLAND_BASE_URL=" .. q(api.base_url) })
      assert_one_line_error(r, "API key")
      r = cli({ "calls", "run-3", "--api-key", "k", "--base-url", "ftp://example.com" }, { auth = false })
      assert_one_line_error(r, "base_url")
      assert_one_line_error(cli({ "calls", ".." }), "run_id")
    end)
  end)

  describe("output streams", function()
    it("a closed pipe ends quietly: the header, nothing on stderr", function()
      local r = cli({ "calls", "run-2000", "--format", "csv" }, { pipe = "| head -1" })
      local header = {}
      for _, k in ipairs(CALL_FIELDS) do
        header[#header + 1] = k == "agent_results" and "agent_results_count" or k
      end
      assert.are.equal(table.concat(header, ",") .. "\r\n", r.out)
      assert.are.equal("", r.err)
      r = cli({ "calls", "run-2000", "--format", "jsonl", "--agent-results" }, { pipe = "| head -c 100" })
      assert.are.equal(100, #r.out)
      assert.are.equal("", r.err)
    end)

    it("no progress bar when stderr is not a terminal", function()
      local r = cli({ "calls", "run-400", "--format", "csv" })
      assert.are.equal(0, r.status)
      assert.are.equal("", r.err)
      r = cli({ "report", "run-200" })
      assert.are.equal(0, r.status)
      assert.are.equal("", r.err)
    end)

    it("a progress bar on stderr when it is a terminal (script(1))", function()
      if not shell.sh("command -v script"):find("script", 1, true) then
        pending("script(1) is not installed")
        return
      end
      local function under_tty(cmd)
        -- stdout to a file inside the pseudo-terminal session: what script prints is stderr
        return "script -qec " .. q(cmd .. " >/dev/null") .. " /dev/null"
      end
      local r = cli({ "calls", "run-300", "--format", "csv" }, { wrap = under_tty })
      local tty = r.out
      assert.is_truthy(tty:find("\r\27[K", 1, true), tty)
      assert.is_truthy(tty:find("300/300 items, 3 pages", 1, true), tty)
      r = cli({ "calls", "run-300", "--format", "csv", "--no-progress" }, { wrap = under_tty })
      assert.is_falsy(r.out:find("items", 1, true), r.out)
    end)
  end)
end)
