-- blandeval.cli: the `blandeval` command line (bin/blandeval). For Lua 5.4 and LuaJIT 2.1.
--
--   local status = require("blandeval.cli").main(arg)   -- never raises; 0, 1 or 2
--
-- Commands: calls, verdicts, snapshots, report, compare, wait, runs (see HELP below).
-- Output goes to stdout (tables, CSV or JSON lines), diagnostics to stderr: one line per
-- error, never a traceback (set BLANDEVAL_DEBUG=1 for one on internal errors). A progress
-- bar is drawn on stderr only when stderr is a terminal.

local blandeval = require "blandeval"
local output = require "blandeval.output"

local type, pairs, ipairs, tostring, tonumber, error, pcall, xpcall, setmetatable, getmetatable, require =
  type, pairs, ipairs, tostring, tonumber, error, pcall, xpcall, setmetatable, getmetatable, require
local format, concat, sort, floor = string.format, table.concat, table.sort, math.floor
local getenv = os.getenv

local NULL = blandeval.null

local M = {}

---------------------------------------------------------------------------------------------
-- Failures: values raised inside a command and turned into a message and a status by main

local Usage = {}   -- a wrong command line: message, command; exit 2 with a hint
local Fail = {}    -- anything else the user must read: message; exit 2

local function usage_error(command, fmt, ...)
  error(setmetatable({ message = format(fmt, ...), command = command }, Usage), 0)
end

local function fail(fmt, ...)
  error(setmetatable({ message = format(fmt, ...) }, Fail), 0)
end

-- A message raised by error() with a position, or a `bad argument` error of the library:
-- the text a user should read.
local function clean_message(msg)
  msg = tostring(msg)
  msg = msg:gsub("^[^\n]-%.lua:%d+: ", "")
  local inner = msg:match("^bad argument #%d+ to '[^']*' %((.*)%)$")
  if inner then msg = inner end
  return msg
end

-- One line: without the library's own "blandeval: " prefix, line breaks folded.
local function one_line(msg)
  msg = tostring(msg):gsub("^blandeval: ", ""):gsub("%s*[\r\n]+%s*", " ")
  return msg
end

---------------------------------------------------------------------------------------------
-- Options

-- name -> { arg = metavariable (nil: a flag), global = true when every command takes it }
local OPTIONS = {
  ["api-key"] = { arg = "KEY", global = true },
  ["base-url"] = { arg = "URL", global = true },
  ["timeout"] = { arg = "S", global = true },
  ["request-timeout"] = { arg = "S", global = true },
  ["retries"] = { arg = "N", global = true },
  ["no-progress"] = { global = true },
  ["help"] = { global = true },
  ["version"] = { global = true },
  ["format"] = { arg = "FMT" },
  ["limit"] = { arg = "N" },
  ["failed"] = {},
  ["agent-results"] = {},
  ["threshold"] = { arg = "P" },
  ["score-threshold"] = { arg = "S" },
  ["interval"] = { arg = "S" },
  ["status"] = { arg = "STATUS" },
  ["triggered-by"] = { arg = "T" },
}

local GLOBAL_HELP = [[
global options (before or after the command):
  --api-key KEY          API key (default: $BLAND_API_KEY)
  --base-url URL         API base URL (default: $BLAND_BASE_URL, else https://api.bland.ai)
  --timeout S            seconds per HTTP attempt (in `wait`: how long to wait for the run)
  --request-timeout S    seconds per HTTP attempt, in every command
  --retries N            retries after a failed attempt (0..100, default 2)
  --no-progress          no progress bar (drawn on stderr only when stderr is a terminal)
  -h, --help             help; `blandeval COMMAND --help` for a command
  --version              print the version]]

local FORMAT_HELP = "  --format FMT           table (aligned columns, the default), csv (RFC 4180, with\n"
  .. "                         a header row) or jsonl (one JSON object per line, every field)"

local COMMANDS = {}
local ORDER = { "calls", "verdicts", "snapshots", "report", "compare", "wait", "runs" }

COMMANDS.calls = {
  args = { "RUN_ID" }, more = true,
  options = { format = true, limit = true, failed = true, ["agent-results"] = true },
  summary = "the run's call results, one row per call",
  help = [[
usage: blandeval calls RUN_ID [RUN_ID ...] [--failed] [--agent-results] [--format table|csv|jsonl]
                       [--limit N]

The run's call results, following the API's cursors to the end. Several runs are read
together (up to 4 requests in flight); their rows come as their pages arrive, and the
table gets a first column, run (csv and jsonl have eval_run_id in every row).

  --failed               only the calls with failed_agent_count > 0
  --agent-results        fetch each call's agent results (include_agent_results=true):
                         the table gets a column of their levels, jsonl their objects,
                         csv their number (agent_results_count)
]] .. FORMAT_HELP .. [[

  --limit N              stop after N rows

table: call_id, name, status, overall_score, failed_agents.
csv: the scalar fields of EvalRunCallResult in the documented order, agent_results_count
in place of agent_results; null is an empty field.
jsonl: every field, nulls as null, empty arrays as [].]],
}

COMMANDS.verdicts = {
  args = { "RUN_ID" }, options = { format = true, limit = true, failed = true },
  summary = "one row per verdict (call x agent), joined to the run's agents",
  help = [[
usage: blandeval verdicts RUN_ID [--failed] [--format table|csv|jsonl] [--limit N]

Every agent verdict of the run, joined to the run's agent snapshots.

  --failed               only the verdicts whose evaluation failed (failed = true),
                         with the reason the API gives
]] .. FORMAT_HELP .. [[

  --limit N              stop after N rows

table: call_id, agent, level, target, score, failed, why (failure_code: failure_message).
csv: call_id, call_result_id, agent_result_id, agent_key, agent_name, eval_agent_id,
level_key, level_label, is_target, score_normalized_0_100, is_insufficient_evidence,
failed, failure_code, failure_message.
jsonl: { call_id, call_result_id, agent, level, is_target, verdict } per verdict, with
the whole agent result as verdict.]],
}

COMMANDS.snapshots = {
  args = { "RUN_ID" }, options = { format = true },
  summary = "the run's agents, frozen at submission",
  help = [[
usage: blandeval snapshots RUN_ID [--format table|csv|jsonl]

The run's agent snapshots, in roster order.

]] .. FORMAT_HELP .. [[


table: position, key, name, modality, weight, levels, targets.
csv: the scalar fields of EvalRunAgentSnapshot in the documented order, with level_keys
(';'-separated) in place of levels and target_level_keys ';'-separated.]],
}

COMMANDS.report = {
  args = { "RUN_ID" }, options = {},
  summary = "per-agent summary: hit rate, mean score, level distribution",
  help = [[
usage: blandeval report RUN_ID

Reads the whole run (with agent results) and prints the run's totals, then per agent:
verdicts, target hit rate (target hits / verdicts that are neither failed nor
insufficient), mean score, insufficient-evidence and failed verdicts, and a bar of the
distribution of its verdicts over its levels.]],
}

COMMANDS.compare = {
  args = { "RUN_A", "RUN_B" }, options = { threshold = true, ["score-threshold"] = true, limit = true },
  summary = "per-agent deltas between two runs; exit 1 on a regression",
  help = [[
usage: blandeval compare RUN_A RUN_B [--threshold P] [--score-threshold S] [--limit N]

Compares two runs of the same calls and agents: per agent the target hit rate and the
mean score in A and B and their change, then the calls whose verdict level changed.

  --threshold P          an agent regresses when its hit rate drops by more than P
                         percentage points (default 5)
  --score-threshold S    ... or its mean score by more than S points (default 5)
  --limit N              list at most N of the changed verdicts (all are counted)

Exit status 1 when an agent regresses, 0 otherwise (2 on errors).]],
}

COMMANDS.wait = {
  args = { "RUN_ID" }, options = { interval = true },
  summary = "wait for a run to end; exit 0 COMPLETE/PARTIAL, 1 FAILED/CANCELLED",
  help = [[
usage: blandeval wait RUN_ID [--interval S] [--timeout S]

Polls the run and prints a line whenever its status or progress changes, until it ends.

  --interval S           seconds between polls (default: 2, doubling up to 15)
  --timeout S            give up after S seconds (default 3600); in this command the
                         per-request timeout is --request-timeout

Exit status 0 when the run ends COMPLETE or PARTIAL, 1 when it ends FAILED or CANCELLED,
2 on an error or when the time is up.]],
}

COMMANDS.runs = {
  args = {}, options = { format = true, limit = true, status = true, ["triggered-by"] = true },
  summary = "the eval runs, newest first",
  help = [[
usage: blandeval runs [--status STATUS] [--triggered-by T] [--format table|csv|jsonl] [--limit N]

The organisation's eval runs, newest first.

  --status STATUS        PENDING, QUEUED, RUNNING, COMPLETE, PARTIAL, FAILED or CANCELLED
  --triggered-by T       manual, auto or backfill
]] .. FORMAT_HELP .. [[

  --limit N              stop after N rows

table: id, status, triggered_by, calls, evaluations, score, created_at.
csv: the fields of the run list item, with summary as summary_* columns and metadata as
JSON text.]],
}

local function general_help()
  local lines = {
    "usage: blandeval COMMAND [options] ARGS",
    "",
    "Reads the results of Bland AI eval runs.",
    "",
    "commands:",
  }
  for _, name in ipairs(ORDER) do
    local c = COMMANDS[name]
    local head = name .. (#c.args > 0 and " " .. concat(c.args, " ") or "")
    lines[#lines + 1] = format("  %-22s %s", head, c.summary)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = GLOBAL_HELP
  lines[#lines + 1] = ""
  lines[#lines + 1] = "exit status: 0 success; 1 a regression (compare) or a run that ended FAILED or"
  lines[#lines + 1] = "CANCELLED (wait); 2 a usage error, an API or network error, a timeout."
  lines[#lines + 1] = "`blandeval COMMAND --help` describes a command's options and output."
  return concat(lines, "\n") .. "\n"
end

local function command_help(name)
  return COMMANDS[name].help .. "\n\n" .. GLOBAL_HELP .. "\n"
end

-- argv -> { command =, args = {...}, opts = { name = value or true } }
local function parse(argv)
  local positional, opts, seen_command = {}, {}, nil
  local i, n, only_args = 1, #argv, false
  while i <= n do
    local a = argv[i]
    if only_args or a == "-" or a:sub(1, 1) ~= "-" then
      positional[#positional + 1] = a
      seen_command = seen_command or a
    elseif a == "--" then
      only_args = true
    elseif a == "-h" then
      opts.help = true
    elseif a:sub(1, 2) == "--" then
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      local spec = OPTIONS[name]
      if not spec then usage_error(COMMANDS[seen_command or ""] and seen_command, "unknown option '%s'", a) end
      if spec.arg then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then
            usage_error(COMMANDS[seen_command or ""] and seen_command, "option --%s needs a value (%s)",
              name, spec.arg)
          end
        end
        opts[name] = value
      else
        if value ~= nil then
          usage_error(COMMANDS[seen_command or ""] and seen_command, "option --%s takes no value", name)
        end
        opts[name] = true
      end
    else
      usage_error(COMMANDS[seen_command or ""] and seen_command, "unknown option '%s'", a)
    end
    i = i + 1
  end
  local command = table.remove(positional, 1)
  return { command = command, args = positional, opts = opts }
end

-- Option values

local function whole(command, name, value, lo, hi)
  local n = value:match("^%d+$") and tonumber(value)
  if not n or n < lo or n > hi then
    usage_error(command, "--%s must be a whole number from %d to %d, got '%s'", name, lo, hi, value)
  end
  return n
end

-- A number option: lo <= value <= hi (lo_open: value > lo); what names the unit for messages.
local function number_opt(command, name, value, lo, hi, what, lo_open)
  local n = value:match("^%s*%d*%.?%d+%s*$") and tonumber(value)
  if not n or n < lo or n > hi or (lo_open and n <= lo) then
    usage_error(command, "--%s must be a number of %s %s %s and <= %s, got '%s'", name, what,
      lo_open and ">" or ">=", output.number(lo), output.number(hi), value)
  end
  return n
end

local FORMATS = { table = true, csv = true, jsonl = true }
local RUN_STATUSES = { "PENDING", "QUEUED", "RUNNING", "COMPLETE", "PARTIAL", "FAILED", "CANCELLED" }
local TRIGGERS = { manual = true, auto = true, backfill = true }

---------------------------------------------------------------------------------------------
-- Helpers shared by the commands

local function is_null(v) return v == nil or v == NULL end
local function str(v) if type(v) == "string" then return v end end
local function num(v) if type(v) == "number" and v == v then return v end end

-- Table cell text of a value: "-" for missing
local function text(v)
  if is_null(v) then return "-" end
  if type(v) == "number" then return output.number(v) end
  if type(v) == "boolean" then return v and "yes" or "no" end
  return tostring(v)
end

local function fixed(v, digits)
  v = num(v)
  if not v then return "-" end
  return format("%." .. (digits or 1) .. "f", v)
end

local function yes_no(v)
  if v == true then return "yes" elseif v == false then return "no" end
  return "-"
end

local function list_of(v) if type(v) == "table" then return v end return {} end

-- Calls iterator:close() (on its closing value, else its state); harmless when closed.
local function close_iterator(state, closing)
  local target = closing or state
  if target == nil then return end
  pcall(function() target:close() end)
end

-- Runs body(a, b, c) for each item of the iteration (f, s, c, closing) until it returns
-- false or the items end; the iterator is closed when the loop stops early or raises.
local function each(f, s, c, closing, body)
  local stopped = false
  local ok, err = pcall(function()
    local control = c
    while true do
      local a, b, d = f(s, control)
      if a == nil then return end
      control = a
      if body(a, b, d) == false then
        stopped = true
        return
      end
    end
  end)
  if stopped or not ok then close_iterator(s, closing) end
  if not ok then error(err, 0) end
end

-- Counts the pages an iteration passes through on the progress bar.
local function page_watch(ctx, label)
  local last
  return function(page)
    if page ~= nil and page ~= last then
      last = page
      ctx.progress.page(page, label)
    end
  end
end

local function client_of(ctx)
  if ctx.client then return ctx.client end
  local o = { keep_nulls = true }
  local key = ctx.opts["api-key"]
  if key then
    if key == "" then fail("--api-key is empty") end
    o.api_key = key
  else
    local env = getenv("BLAND_API_KEY")
    if env == nil or env == "" then fail("no API key: pass --api-key KEY or set BLAND_API_KEY") end
  end
  if ctx.opts["base-url"] then o.base_url = ctx.opts["base-url"] end
  if ctx.one_page then o.prefetch = false end      -- nothing beyond the first page is wanted
  if ctx.request_timeout then o.timeout = ctx.request_timeout end
  if ctx.retries then o.max_retries = ctx.retries end
  local ok, c = pcall(blandeval.new, o)
  if not ok then fail("%s", clean_message(c)) end
  ctx.client = c
  return c
end

local function analysis()
  local ok, m = pcall(require, "blandeval.analysis")
  if not ok then fail("this command needs the module blandeval.analysis: %s", clean_message(m)) end
  return m
end

-- Writes rows in the chosen format: w.header(), w.row(table_cells, csv_fields, json_value),
-- w.finish(). Tables wait for every row (their widths); csv and jsonl stream.
local function writer(ctx, fmt, spec)
  local out, rows = ctx.out, {}
  local w = {}
  if fmt == "csv" then
    out.put(output.csv_row(spec.csv_header))
  end
  function w.row(cells, fields, value)
    if fmt == "table" then rows[#rows + 1] = cells()
    elseif fmt == "csv" then out.put(output.csv_row(fields(), #spec.csv_header))
    else out.put(output.json(value(), spec.kind, NULL), "\n") end
  end
  function w.finish()
    if fmt == "table" then
      ctx.progress.done()
      for _, line in ipairs(output.table_lines(spec.columns, rows)) do out.line(line) end
    end
  end
  return w
end

local function limit_reached(ctx, count)
  return ctx.limit ~= nil and count >= ctx.limit
end

---------------------------------------------------------------------------------------------
-- calls

local CALL_FIELDS = output.SCHEMAS.call_result.order
local CALL_CSV = {}
for i, k in ipairs(CALL_FIELDS) do CALL_CSV[i] = k == "agent_results" and "agent_results_count" or k end

local function verdict_word(v)
  if type(v) ~= "table" then return "?" end
  if v.failed == true then return "FAILED" end
  if v.is_insufficient_evidence == true then return "INSUFFICIENT" end
  return str(v.selected_level_label) or str(v.selected_level_key) or "-"
end

function COMMANDS.calls.run(ctx)
  local run_id = ctx.args[1]
  local several = #ctx.args > 1
  local with_agents = ctx.opts["agent-results"] == true
  local only_failed = ctx.opts.failed == true
  local columns = {
    { "call_id" }, { "name", max = 40 }, { "status" }, { "overall_score", right = true },
    { "failed_agents", right = true },
  }
  if several then table.insert(columns, 1, { "run", max = 40 }) end
  if with_agents then columns[#columns + 1] = { "agent_levels", max = 60 } end
  local w = writer(ctx, ctx.format, { csv_header = CALL_CSV, kind = "call_result", columns = columns })
  local params = { include_agent_results = with_agents }
  if ctx.limit and not only_failed and ctx.limit < 100 then
    params.limit, ctx.one_page = ctx.limit, true
  end
  local client = client_of(ctx)
  local watch, count = page_watch(ctx), 0
  local f, s, c, closing
  if several then
    local step, it, ctl
    step, it, ctl, closing = client:call_results_many(ctx.args, params)
    f, s, c = function(st)                   -- item, page, run id: the shape of one run's rows
      local r, tag, page = step(st)
      if r == nil then return nil end
      return r, page, tag
    end, it, ctl
  else
    f, s, c, closing = client:call_results(run_id, params)
  end
  each(f, s, c, closing, function(r, page, tag)
    watch(page)
    if limit_reached(ctx, count) then return false end
    if only_failed then
      local n = num(r.failed_agent_count)
      if not (n and n > 0) then return end
    end
    count = count + 1
    w.row(function()
      local cells = { text(r.call_id), text(r.call_display_name), text(r.status),
        fixed(r.overall_score_normalized_0_100), text(r.failed_agent_count) }
      if several then table.insert(cells, 1, text(tag)) end
      if with_agents then
        local words = {}
        for i, v in ipairs(list_of(r.agent_results)) do words[i] = verdict_word(v) end
        cells[#cells + 1] = concat(words, ", ")
      end
      return cells
    end, function()
      local fields = {}
      for i, k in ipairs(CALL_FIELDS) do
        if k == "agent_results" then
          local ar = r.agent_results
          fields[i] = type(ar) == "table" and tostring(#ar) or ""
        else
          fields[i] = output.scalar(r[k], NULL)
        end
      end
      return fields
    end, function() return r end)
    if limit_reached(ctx, count) then return false end
  end)
  w.finish()
  return 0
end

---------------------------------------------------------------------------------------------
-- verdicts

local VERDICT_CSV = { "call_id", "call_result_id", "agent_result_id", "agent_key", "agent_name", "eval_agent_id",
  "level_key", "level_label", "is_target", "score_normalized_0_100", "is_insufficient_evidence", "failed",
  "failure_code", "failure_message" }

-- why a verdict failed, in one cell: "CODE: message", either part alone, or "-"
local function failure_why(v)
  if v.failed ~= true then return "-" end
  local code, msg = str(v.failure_code), str(v.failure_message)
  if code and msg then return code .. ": " .. msg end
  return code or msg or "-"
end

function COMMANDS.verdicts.run(ctx)
  local run_id = ctx.args[1]
  local A = analysis()
  local client = client_of(ctx)
  local w = writer(ctx, ctx.format, {
    csv_header = VERDICT_CSV, kind = "verdict",
    columns = { { "call_id" }, { "agent", max = 40 }, { "level", max = 30 }, { "target" },
      { "score", right = true }, { "failed" }, { "why", max = 60 } },
  })
  local only_failed = ctx.opts.failed == true
  local watch, count = page_watch(ctx), 0
  local f, s, c, closing = A.verdicts(client, run_id)
  each(f, s, c, closing, function(r, verdicts, page)
    watch(page)
    for _, j in ipairs(verdicts) do
      if limit_reached(ctx, count) then return false end
      local v, agent, level = j.verdict, j.agent or {}, j.level
      if only_failed and v.failed ~= true then goto next_verdict end
      count = count + 1
      w.row(function()
        return { text(r.call_id), text(agent.name or agent.key or agent.snapshot_id),
          level and text(level.label or level.key) or "-", yes_no(j.is_target),
          fixed(v.score_normalized_0_100), yes_no(v.failed), text(failure_why(v)) }
      end, function()
        return { output.scalar(r.call_id, NULL), output.scalar(r.id, NULL), output.scalar(v.id, NULL),
          output.scalar(agent.key), output.scalar(agent.name), output.scalar(agent.eval_agent_id),
          output.scalar(level and level.key), output.scalar(level and level.label),
          output.scalar(j.is_target), output.scalar(v.score_normalized_0_100, NULL),
          output.scalar(v.is_insufficient_evidence, NULL), output.scalar(v.failed, NULL),
          output.scalar(v.failure_code, NULL), output.scalar(v.failure_message, NULL) }
      end, function()
        return { call_id = r.call_id, call_result_id = r.id, agent = agent,
          level = level or NULL, is_target = j.is_target, verdict = v }
      end)
      ::next_verdict::
    end
    if limit_reached(ctx, count) then return false end
  end)
  w.finish()
  return 0
end

---------------------------------------------------------------------------------------------
-- snapshots

local SNAPSHOT_FIELDS = output.SCHEMAS.snapshot.order
local SNAPSHOT_CSV = {}
for i, k in ipairs(SNAPSHOT_FIELDS) do SNAPSHOT_CSV[i] = k == "levels" and "level_keys" or k end

local function joined(list, field, sep)
  local parts = {}
  for _, v in ipairs(list_of(list)) do
    local x = field and type(v) == "table" and v[field] or v
    if type(x) == "string" then parts[#parts + 1] = x end
  end
  return concat(parts, sep)
end

function COMMANDS.snapshots.run(ctx)
  local client = client_of(ctx)
  local w = writer(ctx, ctx.format, {
    csv_header = SNAPSHOT_CSV, kind = "snapshot",
    columns = { { "position", right = true }, { "key", max = 40 }, { "name", max = 40 }, { "modality" },
      { "weight", right = true }, { "levels", max = 60 }, { "targets", max = 40 } },
  })
  local watch = page_watch(ctx)
  local f, s, c, closing = client:agent_snapshots(ctx.args[1])
  each(f, s, c, closing, function(snap, page)
    watch(page)
    w.row(function()
      local levels = joined(snap.levels, "label", " / ")
      return { text(snap.position), text(snap.key), text(snap.name), text(snap.modality), text(snap.weight),
        levels ~= "" and levels or "(pass/fail)", joined(snap.target_level_keys, nil, ",") }
    end, function()
      local fields = {}
      for i, k in ipairs(SNAPSHOT_FIELDS) do
        if k == "levels" then fields[i] = joined(snap.levels, "level_key", ";")
        elseif k == "target_level_keys" then fields[i] = joined(snap.target_level_keys, nil, ";")
        else fields[i] = output.scalar(snap[k], NULL) end
      end
      return fields
    end, function() return snap end)
  end)
  w.finish()
  return 0
end

---------------------------------------------------------------------------------------------
-- report

local CALL_STATUS_ORDER = { "PENDING", "QUEUED", "RUNNING", "COMPLETE", "FAILED", "INSUFFICIENT_EVIDENCE" }

local function percent(part, whole_)
  if not whole_ or whole_ == 0 then return "-" end
  return format("%.1f%%", 100 * part / whole_)
end

local function rate(x)
  x = num(x)
  if not x then return "-" end
  return format("%.1f%%", 100 * x)
end

local function status_counts(by_status)
  local parts, done = {}, {}
  for _, s in ipairs(CALL_STATUS_ORDER) do
    if by_status[s] then
      parts[#parts + 1] = format("%s %d", s, by_status[s])
      done[s] = true
    end
  end
  local rest = {}
  for s in pairs(by_status) do if not done[s] then rest[#rest + 1] = s end end
  sort(rest)
  for _, s in ipairs(rest) do parts[#parts + 1] = format("%s %d", s, by_status[s]) end
  return concat(parts, ", ")
end

local function agent_label(e)
  return e.name or e.key or e.eval_agent_id or e.snapshot_id or "?"
end

local BAR_CELLS = 30

function COMMANDS.report.run(ctx)
  local run_id = ctx.args[1]
  local A = analysis()
  local client = client_of(ctx)
  local last_page
  local sum = A.summary(client, run_id, { progress = function(page)
    last_page = page
    ctx.progress.page(page)
  end })
  ctx.progress.done()
  local out, o = ctx.out, sum.overall or {}
  local calls = o.calls or 0
  local head = {}
  local run_line = run_id
  if last_page and type(last_page.run_status) == "string" then
    run_line = run_line .. " (" .. last_page.run_status
    if num(last_page.run_resolved_call_count) then
      run_line = run_line .. format(", %d calls resolved", last_page.run_resolved_call_count)
    end
    run_line = run_line .. ")"
  end
  head[#head + 1] = { "run", run_line }
  local by = status_counts(o.by_status or {})
  head[#head + 1] = { "calls", format("%d", calls) .. (by ~= "" and ": " .. by or "") }
  head[#head + 1] = { "failed calls", format("%d (%s)", o.failed_calls or 0, percent(o.failed_calls or 0, calls)) }
  head[#head + 1] = { "insufficient", format("%d (%s)", o.insufficient_calls or 0,
    percent(o.insufficient_calls or 0, calls)) }
  head[#head + 1] = { "mean score", fixed(o.mean_overall_score) }
  for _, l in ipairs(head) do out.line(output.pad(l[1], 14) .. l[2]) end
  out.line("")

  local agents = sum.agents or {}
  local rows = {}
  for i, e in ipairs(agents) do
    rows[i] = { agent_label(e), text(e.verdicts or 0), rate(e.target_hit_rate), fixed(e.mean_score),
      text(e.insufficient or 0), text(e.failed or 0) }
  end
  local columns = { { "agent", max = 40 }, { "verdicts", right = true }, { "hit_rate", right = true },
    { "mean_score", right = true }, { "insufficient", right = true }, { "failed", right = true } }
  for _, line in ipairs(output.table_lines(columns, rows)) do out.line(line) end
  if #agents == 0 then return 0 end

  -- level distributions
  out.line("")
  local name_width = 0
  local names = {}
  for i, e in ipairs(agents) do
    names[i] = output.cell(agent_label(e), 40)
    local wd = output.width(names[i])
    if wd > name_width then name_width = wd end
  end
  for i, e in ipairs(agents) do
    local counts, legend = {}, {}
    local order = e.level_order or {}
    if #order == 0 then
      for k in pairs(e.levels or {}) do order[#order + 1] = k end
      sort(order)
    end
    for k, key in ipairs(order) do
      local n = (e.levels or {})[key] or 0
      counts[k] = n
      local label = (e.level_labels or {})[key] or key
      legend[k] = format("%s %s %d", output.BLOCKS[(k - 1) % #output.BLOCKS + 1], output.cell(label, 30), n)
    end
    local bar = output.bar(counts, BAR_CELLS)
    if bar == "" then bar = (" "):rep(BAR_CELLS) end
    local tail = #legend > 0 and concat(legend, "  ") or "(no levels)"
    out.line(output.pad(names[i], name_width) .. "  " .. bar .. "  " .. tail)
  end
  return 0
end

---------------------------------------------------------------------------------------------
-- compare

local function delta_points(x, scale)
  x = num(x)
  if not x then return "-" end
  return format("%+.1f", x * (scale or 1))
end

function COMMANDS.compare.run(ctx)
  local run_a, run_b = ctx.args[1], ctx.args[2]
  local A = analysis()
  local client = client_of(ctx)
  local threshold = ctx.opts.threshold
    and number_opt("compare", "threshold", ctx.opts.threshold, 0, 100, "percentage points") or 5
  local score_threshold = ctx.opts["score-threshold"]
    and number_opt("compare", "score-threshold", ctx.opts["score-threshold"], 0, 100, "score points") or 5
  local cmp = A.compare(client, run_a, run_b, {
    threshold = threshold / 100, score_threshold = score_threshold,
    progress = function(page, id) ctx.progress.page(page, id) end,
  })
  ctx.progress.done()
  local out = ctx.out
  out.line(format("A %s  B %s  (regression: hit rate down more than %s points or mean score down more than %s)",
    run_a, run_b, output.number(threshold), output.number(score_threshold)))
  out.line("")
  local rows = {}
  local flagged = {}
  for i, ag in ipairs(cmp.agents or {}) do
    local a, b = ag.a or {}, ag.b or {}
    rows[i] = { ag.name or ag.key or ag.eval_agent_id or "?",
      ag.a and rate(a.target_hit_rate) or "(absent)", ag.b and rate(b.target_hit_rate) or "(absent)",
      delta_points(ag.hit_rate_delta, 100),
      ag.a and fixed(a.mean_score) or "-", ag.b and fixed(b.mean_score) or "-",
      delta_points(ag.mean_score_delta), ag.regression and "REGRESSION" or "" }
    if ag.regression then flagged[#flagged + 1] = ag.name or ag.key or "?" end
  end
  local columns = { { "agent", max = 40 }, { "a_hit_rate", right = true }, { "b_hit_rate", right = true },
    { "hit_rate_delta", right = true }, { "a_mean", right = true }, { "b_mean", right = true },
    { "mean_delta", right = true }, { "flag" } }
  for _, line in ipairs(output.table_lines(columns, rows)) do out.line(line) end
  out.line("")
  local changed = cmp.changed or {}
  out.line(format("changed verdicts: %d", #changed))
  if #changed > 0 then
    local crows = {}
    for i, ch in ipairs(changed) do
      if ctx.limit and i > ctx.limit then break end
      crows[i] = { text(ch.call_id), text(ch.key), text(ch.a_level), text(ch.b_level),
        yes_no(ch.a_target), yes_no(ch.b_target) }
    end
    local ccols = { { "call_id" }, { "agent", max = 40 }, { "a_level", max = 24 }, { "b_level", max = 24 },
      { "a_target" }, { "b_target" } }
    for _, line in ipairs(output.table_lines(ccols, crows)) do out.line(line) end
    if #crows < #changed then out.line(format("... and %d more", #changed - #crows)) end
  end
  out.line("")
  if cmp.regression then
    out.line("regression: yes (" .. concat(flagged, ", ") .. ")")
    return 1
  end
  out.line("regression: no")
  return 0
end

---------------------------------------------------------------------------------------------
-- wait

local ENDED_OK = { COMPLETE = true, PARTIAL = true }
local ENDED_BAD = { FAILED = true, CANCELLED = true }

function COMMANDS.wait.run(ctx)
  local run_id = ctx.args[1]
  local client = client_of(ctx)
  local o = {}
  if ctx.opts.interval then
    o.interval = number_opt("wait", "interval", ctx.opts.interval, 0, 3600, "seconds")
    o.max_interval = o.interval
  end
  if ctx.opts.timeout then o.timeout = number_opt("wait", "timeout", ctx.opts.timeout, 0, 604800, "seconds") end
  local out, last = ctx.out, nil
  o.progress = function(run)
    local status = str(run.status) or "?"
    local done, total = num(run.completed_atom_count), num(run.resolved_atom_count)
    local line = format("%s %s", run_id, status)
    if done and total and total > 0 then
      line = line .. format("  %d/%d evaluations (%d%%)", done, total, floor(100 * done / total))
    elseif done and total then
      line = line .. format("  %d/%d evaluations", done, total)
    end
    if line ~= last then
      last = line
      out.line(os.date("!%H:%M:%S ") .. line)
      out.flush()
    end
  end
  local run, err = client:wait_for_run(run_id, o)
  if not run then error(err, 0) end
  local status = str(run.status)
  if ENDED_OK[status] then return 0 end
  if ENDED_BAD[status] then
    local why = str(run.error_code) or str(run.error_message)
    if why then out.line(format("%s ended %s: %s", run_id, status, one_line(why))) end
    return 1
  end
  fail("run %s ended with an unknown status %s", run_id, tostring(status))
end

---------------------------------------------------------------------------------------------
-- runs

local SUMMARY_FIELDS = output.SCHEMAS.run_summary.order
local RUN_CSV_BEFORE = { "id", "status", "triggered_by", "run_mode", "resolved_call_count", "resolved_agent_count",
  "resolved_atom_count", "completed_atom_count" }
local RUN_CSV_AFTER = { "billable_cost_usd", "workbench_setup_id", "workbench_setup_version_id", "metadata",
  "created_at", "started_at", "completed_at" }
local RUN_CSV = {}
for _, k in ipairs(RUN_CSV_BEFORE) do RUN_CSV[#RUN_CSV + 1] = k end
for _, k in ipairs(SUMMARY_FIELDS) do RUN_CSV[#RUN_CSV + 1] = "summary_" .. k end
for _, k in ipairs(RUN_CSV_AFTER) do RUN_CSV[#RUN_CSV + 1] = k end

function COMMANDS.runs.run(ctx)
  local filters = {}
  if ctx.opts.status then
    local s = ctx.opts.status:upper()
    local ok = false
    for _, v in ipairs(RUN_STATUSES) do if v == s then ok = true end end
    if not ok then
      usage_error("runs", "--status must be one of %s, got '%s'", concat(RUN_STATUSES, ", "), ctx.opts.status)
    end
    filters.status = s
  end
  if ctx.opts["triggered-by"] then
    local t = ctx.opts["triggered-by"]:lower()
    if not TRIGGERS[t] then
      usage_error("runs", "--triggered-by must be manual, auto or backfill, got '%s'", ctx.opts["triggered-by"])
    end
    filters.triggered_by = t
  end
  if ctx.limit and ctx.limit < 100 then filters.limit = ctx.limit end
  local client = client_of(ctx)
  local w = writer(ctx, ctx.format, {
    csv_header = RUN_CSV, kind = "run",
    columns = { { "id" }, { "status" }, { "triggered_by" }, { "calls", right = true },
      { "evaluations", right = true }, { "score", right = true }, { "created_at" } },
  })
  local watch, count = page_watch(ctx), 0
  local f, s, c, closing = client:runs(filters)
  each(f, s, c, closing, function(run, page)
    watch(page)
    if limit_reached(ctx, count) then return false end
    count = count + 1
    local summary = type(run.summary) == "table" and run.summary or {}
    w.row(function()
      local done, total = num(run.completed_atom_count), num(run.resolved_atom_count)
      return { text(run.id), text(run.status), text(run.triggered_by), text(run.resolved_call_count),
        (done and total) and format("%d/%d", done, total) or "-", fixed(summary.overall_score_mean),
        text(run.created_at) }
    end, function()
      local fields = {}
      for _, k in ipairs(RUN_CSV_BEFORE) do fields[#fields + 1] = output.scalar(run[k], NULL) end
      for _, k in ipairs(SUMMARY_FIELDS) do fields[#fields + 1] = output.scalar(summary[k], NULL) end
      for _, k in ipairs(RUN_CSV_AFTER) do
        local v = run[k]
        fields[#fields + 1] = type(v) == "table" and output.json(v, nil, NULL) or output.scalar(v, NULL)
      end
      return fields
    end, function() return run end)
    if limit_reached(ctx, count) then return false end
  end)
  w.finish()
  return 0
end

---------------------------------------------------------------------------------------------
-- main

-- Whether stderr is a terminal: lua-term's isatty when installed, else test(1).
local function stderr_is_tty()
  local ok, term = pcall(require, "term")
  if ok and type(term) == "table" and type(term.isatty) == "function" then
    local ok2, r = pcall(term.isatty, io.stderr)
    if ok2 then return r == true end
  end
  local r = os.execute("test -t 2")
  return r == true or r == 0          -- Lua 5.4: true/nil; Lua 5.1 and LuaJIT: the status
end

local function run(argv, state)
  local p = parse(argv)
  local name, opts = p.command, p.opts
  state.command = COMMANDS[name or ""] and name or nil
  if opts.version then
    state.out.line("blandeval " .. tostring(blandeval._VERSION))
    return 0
  end
  if name == "help" then
    local topic = p.args[1]
    if topic == nil then state.out.put(general_help()) return 0 end
    if not COMMANDS[topic] then usage_error(nil, "unknown command '%s'", topic) end
    state.out.put(command_help(topic))
    return 0
  end
  if name == nil then
    if opts.help then state.out.put(general_help()) return 0 end
    usage_error(nil, "missing command")
  end
  local cmd = COMMANDS[name]
  if not cmd then usage_error(nil, "unknown command '%s'", name) end
  if opts.help then state.out.put(command_help(name)) return 0 end

  for k in pairs(opts) do
    if not OPTIONS[k].global and not cmd.options[k] then
      usage_error(name, "option --%s does not apply to '%s'", k, name)
    end
  end
  if #p.args < #cmd.args then
    usage_error(name, "missing argument %s", cmd.args[#p.args + 1])
  elseif #p.args > #cmd.args and not cmd.more then
    usage_error(name, "unexpected argument '%s'", p.args[#cmd.args + 1])
  end
  for i, a in ipairs(p.args) do
    if a == "" then usage_error(name, "%s is empty", cmd.args[i] or cmd.args[#cmd.args]) end
  end

  local ctx = { args = p.args, opts = opts, out = state.out, format = "table" }
  if opts.format then
    if not FORMATS[opts.format] then
      usage_error(name, "--format must be table, csv or jsonl, got '%s'", opts.format)
    end
    ctx.format = opts.format
  end
  if opts.limit then ctx.limit = whole(name, "limit", opts.limit, 1, 1000000000) end
  if opts.retries then ctx.retries = whole(name, "retries", opts.retries, 0, 100) end
  if opts["request-timeout"] then
    ctx.request_timeout = number_opt(name, "request-timeout", opts["request-timeout"], 0, 86400, "seconds", true)
  elseif opts.timeout and name ~= "wait" then
    ctx.request_timeout = number_opt(name, "timeout", opts.timeout, 0, 86400, "seconds", true)
  end
  local tty = not opts["no-progress"] and stderr_is_tty()
  ctx.progress = output.progress(tty)
  state.progress = ctx.progress
  local status = cmd.run(ctx)
  ctx.progress.done()
  return status
end

local function write_err(line)
  pcall(function()
    io.stderr:write(line, "\n")
    io.stderr:flush()
  end)
end

--- cli.main(argv) -> exit status (0, 1 or 2). argv: the script's `arg` (arg[1..n]).
function M.main(argv)
  argv = argv or {}
  local state = {}
  state.out = output.sink(io.stdout, function()
    if state.progress then state.progress.clear() end
  end)
  local trace
  local ok, status = xpcall(function()
    local s = run(argv, state)
    state.out.flush()
    return s
  end, function(e)
    local mt = type(e) == "table" and getmetatable(e) or nil
    if mt ~= Usage and mt ~= Fail and mt ~= output.WRITE_ERROR and not (type(e) == "table" and e.kind)
      and getenv("BLANDEVAL_DEBUG") and debug and debug.traceback then
      trace = debug.traceback(tostring(e), 2)
    end
    return e
  end)
  if state.progress then pcall(state.progress.done) end
  if ok then return type(status) == "number" and status or 0 end

  local e = status
  local mt = type(e) == "table" and getmetatable(e) or nil
  if mt == output.WRITE_ERROR then
    if e.closed then return 0 end          -- the reader went away (| head): stop quietly
    write_err("blandeval: " .. one_line(tostring(e)))
    return 2
  elseif mt == Usage then
    local where = e.command and ("blandeval " .. e.command .. ": ") or "blandeval: "
    write_err(where .. one_line(e.message))
    write_err("try blandeval --help" .. (e.command and (" or blandeval " .. e.command .. " --help") or ""))
    return 2
  elseif mt == Fail then
    write_err("blandeval: " .. one_line(e.message))
    return 2
  elseif type(e) == "table" and e.kind then          -- an error value of the library
    local okm, msg = pcall(tostring, e)
    if not okm or type(msg) ~= "string" or msg:match("^table: ") then
      msg = format("%s error: %s", tostring(e.kind), tostring(e.message))
    end
    write_err("blandeval: " .. one_line(msg))
    return 2
  else
    if trace then write_err(trace) end
    write_err("blandeval: " .. one_line(clean_message(e)))
    return 2
  end
end

return M
