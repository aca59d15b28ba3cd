-- blandeval.output: the writers of the blandeval command line: JSON (one value per line),
-- CSV (RFC 4180), aligned text tables, a level bar chart and the terminal progress bar.
-- Pure Lua, for Lua 5.4 and LuaJIT 2.1.
--
--   local output = require "blandeval.output"
--   output.json(value [, kind [, null]])   -> JSON text (kind: a name in output.SCHEMAS)
--   output.csv_row(fields [, n])           -> one CSV record, CRLF-terminated
--   output.table_lines(columns, rows)      -> array of aligned lines
--   output.sink(fh [, before_write])       -> buffered writer; raises output.WRITE_ERROR
--   output.progress(enabled [, fh])        -> progress bar on a terminal (or a no-op)
--   output.width(s)                        -> display width of a UTF-8 string

local type, pairs, ipairs, tostring, tonumber, error, setmetatable, rawequal, select, pcall, require =
  type, pairs, ipairs, tostring, tonumber, error, setmetatable, rawequal, select, pcall, require
local format, byte, char, concat, sort = string.format, string.byte, string.char, table.concat, table.sort
local floor, huge = math.floor, math.huge
local mtype = math.type                          -- nil on LuaJIT

local M = {}

---------------------------------------------------------------------------------------------
-- JSON

-- Keys in the API's documented order (API reference 3.2-3.7), and the kind of each nested
-- object; keys a kind does not list follow its listed ones, sorted.
local SCHEMAS = {
  call_result = {
    order = { "id", "org_id", "eval_run_id", "call_id", "call_display_name", "call_started_at",
      "call_duration_seconds", "call_ended_by", "transcript_snapshot_ref",
      "transcript_snapshot_expires_at", "status", "started_at", "completed_at",
      "overall_score_normalized_0_100", "text_score_normalized_0_100", "audio_score_normalized_0_100",
      "failed_agent_count", "insufficient_evidence_agent_count", "agent_results", "created_at" },
    kinds = { agent_results = "agent_result" },
  },
  agent_result = {
    order = { "id", "org_id", "eval_run_id", "eval_run_call_result_id", "eval_run_agent_snapshot_id",
      "eval_agent_id", "eval_agent_version_id", "call_id", "selected_level_key", "selected_level_label",
      "score_normalized_0_100", "is_target_match", "is_insufficient_evidence", "confidence",
      "reasoning_md", "evidence", "failed", "failure_code", "failure_message", "billable_cost_usd",
      "audit", "created_at" },
    kinds = { evidence = "evidence", audit = "audit" },
  },
  evidence = { order = { "source", "speaker", "start_ms", "end_ms", "text" } },
  audit = { order = { "prompt_version", "input_tokens", "output_tokens", "latency_ms" } },
  snapshot = {
    order = { "id", "org_id", "eval_run_id", "eval_agent_id", "eval_agent_version_id", "position",
      "key", "name", "modality", "system_prompt_md", "prompt_md", "prompt_version", "levels",
      "target_level_keys", "weight", "created_at" },
    kinds = { levels = "level" },
  },
  level = { order = { "level_key", "label", "prompt_md", "color" } },
  run = {
    order = { "id", "org_id", "status", "triggered_by", "run_mode", "submitted_call_ids",
      "submitted_attached_agents", "workbench_setup_id", "workbench_setup_version_id",
      "resolved_call_count", "resolved_agent_count", "resolved_atom_count", "completed_atom_count",
      "summary", "billable_cost_usd", "error_code", "error_message", "workflow_id", "metadata",
      "created_at", "started_at", "completed_at" },
    kinds = { summary = "run_summary", submitted_attached_agents = "attached_agent" },
  },
  run_summary = {
    order = { "overall_score_mean", "text_score_mean", "audio_score_mean", "successful_call_count",
      "failed_call_count", "insufficient_evidence_count", "target_match_count", "pass_threshold_pct",
      "overall_pass" },
  },
  attached_agent = { order = { "eval_agent_id", "eval_agent_version_id", "weight", "target_level_keys" } },
  -- the rows of `blandeval verdicts --format jsonl`
  verdict = {
    order = { "call_id", "call_result_id", "agent", "level", "is_target", "verdict" },
    kinds = { agent = "verdict_agent", level = "verdict_level", verdict = "agent_result" },
  },
  verdict_agent = { order = { "key", "name", "modality", "weight", "snapshot_id", "eval_agent_id" } },
  verdict_level = { order = { "key", "label", "color" } },
}
M.SCHEMAS = SCHEMAS

for _, s in pairs(SCHEMAS) do
  s.rank = {}
  for i, k in ipairs(s.order) do s.rank[k] = i end
  s.kinds = s.kinds or {}
end

-- The API's array fields: an empty table under one of these keys is written as [].
local ARRAY_FIELDS = { data = true, agent_results = true, evidence = true, levels = true,
  target_level_keys = true, submitted_call_ids = true, submitted_attached_agents = true }
M.ARRAY_FIELDS = ARRAY_FIELDS

local function is_integer(x)
  if mtype then return mtype(x) == "integer" end
  -- LuaJIT: every number is a double; integral ones below 2^53 are written as integers
  return x == floor(x) and x > -2 ^ 53 and x < 2 ^ 53 and not (x == 0 and 1 / x < 0)
end

--- output.number(x) -> JSON text of a number: integers as %d, floats as the shortest of
-- %.14g..%.17g that reads back equal (with ".0" when that looks integral, so that a float
-- stays a float on Lua 5.4); NaN and infinities have no JSON form and are written null.
local function number(x)
  if x ~= x or x == huge or x == -huge then return "null" end
  if is_integer(x) then return format("%d", x) end
  local s
  for p = 14, 17 do
    s = format("%." .. p .. "g", x)
    if tonumber(s) == x then break end
  end
  if not s:find("[.eE]") then s = s .. ".0" end
  return s
end
M.number = number

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\" }
for c = 0, 31 do ESCAPES[char(c)] = format("\\u%04x", c) end
ESCAPES["\n"], ESCAPES["\r"], ESCAPES["\t"], ESCAPES["\b"], ESCAPES["\f"] = "\\n", "\\r", "\\t", "\\b", "\\f"

local function string_text(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return ESCAPES[c] or c end) .. '"'
end
M.json_string = string_text

-- nil if t is an array (keys exactly 1..n, n >= 1), else its keys, sorted
local function object_keys(t)
  local n, count, array = #t, 0, true
  for k in pairs(t) do
    count = count + 1
    if array and (type(k) ~= "number" or k < 1 or k > n or k ~= floor(k)) then array = false end
  end
  if array and count == n and n > 0 then return nil, n end
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  return keys, count
end

local function key_less(schema)
  local rank = schema and schema.rank
  return function(a, b)
    local ra, rb = rank and rank[a], rank and rank[b]
    if ra and rb then return ra < rb end
    if ra or rb then return ra ~= nil end
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "string" or ta == "number" then return a < b end
    return tostring(a) < tostring(b)
  end
end

local write

function write(buf, v, kind, key, null, depth)
  local t = type(v)
  if t == "string" then buf[#buf + 1] = string_text(v)
  elseif t == "number" then buf[#buf + 1] = number(v)
  elseif t == "boolean" then buf[#buf + 1] = v and "true" or "false"
  elseif v == nil or rawequal(v, null) then buf[#buf + 1] = "null"
  elseif t == "table" then
    if depth > 1000 then error("blandeval.output: nesting too deep (a cycle?)", 0) end
    local keys, n = object_keys(v)
    if n == 0 then
      buf[#buf + 1] = ARRAY_FIELDS[key] and "[]" or "{}"
      return
    end
    if not keys then
      buf[#buf + 1] = "["
      for i = 1, n do
        if i > 1 then buf[#buf + 1] = "," end
        write(buf, v[i], kind, nil, null, depth + 1)   -- array items are of the array's kind
      end
      buf[#buf + 1] = "]"
      return
    end
    local schema = kind and SCHEMAS[kind]
    sort(keys, key_less(schema))
    buf[#buf + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then buf[#buf + 1] = "," end
      buf[#buf + 1] = string_text(type(k) == "string" and k or tostring(k))
      buf[#buf + 1] = ":"
      write(buf, v[k], schema and schema.kinds[k], k, null, depth + 1)
    end
    buf[#buf + 1] = "}"
  else
    error("blandeval.output: cannot write a " .. t .. " as JSON", 0)
  end
end

--- output.json(value [, kind [, null]]) -> JSON text on one line
-- kind names the object's schema (output.SCHEMAS) for the key order; `null` is the value
-- written as null (blandeval.null; any NULL light userdata is written as null too).
local default_null
do
  local ok, core = pcall(require, "blandeval.core")
  if ok and type(core) == "table" then default_null = core.null end
end

function M.json(value, kind, null)
  if null == nil then null = default_null end
  local buf = {}
  write(buf, value, kind, nil, null, 1)
  return concat(buf)
end

---------------------------------------------------------------------------------------------
-- Scalars and CSV

--- output.is_null(v): nil, or a NULL light userdata (blandeval.null)
local function is_null(v, null)
  if v == nil then return true end
  if null ~= nil and rawequal(v, null) then return true end
  return false
end
M.is_null = is_null

--- output.scalar(v [, null]) -> text of a scalar for CSV: "" for nil/null, true/false,
-- numbers as in JSON, strings as they are; tables are written as JSON.
function M.scalar(v, null)
  if null == nil then null = default_null end
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return number(v) end
  if t == "boolean" then return v and "true" or "false" end
  if is_null(v, null) then return "" end
  if t == "table" then return M.json(v, nil, null) end
  return ""
end

local function csv_field(s)
  if s:find('[,"\r\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end
M.csv_field = csv_field

--- output.csv_row(fields [, n]) -> one RFC 4180 record, CRLF-terminated (fields: strings)
function M.csv_row(fields, n)
  local out = {}
  for i = 1, n or #fields do out[i] = csv_field(fields[i] or "") end
  return concat(out, ",") .. "\r\n"
end

---------------------------------------------------------------------------------------------
-- Display width and text tables

-- Code points that take two terminal cells: East Asian wide and fullwidth forms, emoji.
local WIDE = {
  { 0x1100, 0x115F }, { 0x231A, 0x231B }, { 0x2329, 0x232A }, { 0x23E9, 0x23EC }, { 0x23F0, 0x23F0 },
  { 0x23F3, 0x23F3 }, { 0x25FD, 0x25FE }, { 0x2614, 0x2615 }, { 0x2648, 0x2653 }, { 0x267F, 0x267F },
  { 0x2693, 0x2693 }, { 0x26A1, 0x26A1 }, { 0x26AA, 0x26AB }, { 0x26BD, 0x26BE }, { 0x26C4, 0x26C5 },
  { 0x26CE, 0x26CE }, { 0x26D4, 0x26D4 }, { 0x26EA, 0x26EA }, { 0x26F2, 0x26F3 }, { 0x26F5, 0x26F5 },
  { 0x26FA, 0x26FA }, { 0x26FD, 0x26FD }, { 0x2705, 0x2705 }, { 0x270A, 0x270B }, { 0x2728, 0x2728 },
  { 0x274C, 0x274C }, { 0x274E, 0x274E }, { 0x2753, 0x2755 }, { 0x2757, 0x2757 }, { 0x2795, 0x2797 },
  { 0x27B0, 0x27B0 }, { 0x27BF, 0x27BF }, { 0x2B1B, 0x2B1C }, { 0x2B50, 0x2B50 }, { 0x2B55, 0x2B55 },
  { 0x2E80, 0x303E }, { 0x3041, 0x33FF }, { 0x3400, 0x4DBF }, { 0x4E00, 0x9FFF }, { 0xA000, 0xA4CF },
  { 0xA960, 0xA97F }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF }, { 0xFE10, 0xFE19 }, { 0xFE30, 0xFE6F },
  { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 }, { 0x16FE0, 0x16FE4 }, { 0x17000, 0x18AFF },
  { 0x1B000, 0x1B2FF }, { 0x1F004, 0x1F004 }, { 0x1F0CF, 0x1F0CF }, { 0x1F18E, 0x1F18E },
  { 0x1F191, 0x1F19A }, { 0x1F200, 0x1F2FF }, { 0x1F300, 0x1F320 }, { 0x1F32D, 0x1F335 },
  { 0x1F337, 0x1F37C }, { 0x1F37E, 0x1F393 }, { 0x1F3A0, 0x1F3CA }, { 0x1F3CF, 0x1F3D3 },
  { 0x1F3E0, 0x1F3F0 }, { 0x1F3F4, 0x1F3F4 }, { 0x1F3F8, 0x1F43E }, { 0x1F440, 0x1F440 },
  { 0x1F442, 0x1F4FC }, { 0x1F4FF, 0x1F53D }, { 0x1F54B, 0x1F54E }, { 0x1F550, 0x1F567 },
  { 0x1F57A, 0x1F57A }, { 0x1F595, 0x1F596 }, { 0x1F5A4, 0x1F5A4 }, { 0x1F5FB, 0x1F64F },
  { 0x1F680, 0x1F6C5 }, { 0x1F6CC, 0x1F6CC }, { 0x1F6D0, 0x1F6D2 }, { 0x1F6D5, 0x1F6D7 },
  { 0x1F6EB, 0x1F6EC }, { 0x1F6F4, 0x1F6FC }, { 0x1F7E0, 0x1F7EB }, { 0x1F90C, 0x1F93A },
  { 0x1F93C, 0x1F945 }, { 0x1F947, 0x1F9FF }, { 0x1FA70, 0x1FAFF }, { 0x20000, 0x3FFFD },
}

local function cp_width(cp)
  if cp == 0x200B or cp == 0x200D or (cp >= 0xFE00 and cp <= 0xFE0F) then return 0 end
  if (cp >= 0x0300 and cp <= 0x036F) or (cp >= 0x1AB0 and cp <= 0x1AFF)
    or (cp >= 0x1DC0 and cp <= 0x1DFF) or (cp >= 0x20D0 and cp <= 0x20FF) then return 0 end
  if cp < 0x1100 then return 1 end
  local lo, hi = 1, #WIDE
  while lo <= hi do
    local mid = floor((lo + hi) / 2)
    local r = WIDE[mid]
    if cp < r[1] then hi = mid - 1 elseif cp > r[2] then lo = mid + 1 else return 2 end
  end
  return 1
end

-- Iterates the code points of s: i, cp, len (an invalid byte is one code point U+FFFD).
local function codepoints(s)
  local i, n = 1, #s
  return function()
    if i > n then return nil end
    local c = byte(s, i)
    local len, cp = 1, c
    if c >= 0xF0 and c < 0xF5 then len, cp = 4, c % 8
    elseif c >= 0xE0 then len, cp = 3, c % 16
    elseif c >= 0xC2 and c < 0xE0 then len, cp = 2, c % 32
    elseif c >= 0x80 then len, cp = 1, 0xFFFD end
    if len > 1 then
      for k = i + 1, i + len - 1 do
        local b = byte(s, k)
        if not b or b < 0x80 or b > 0xBF then len, cp = 1, 0xFFFD break end
        cp = cp * 64 + b % 64
      end
    end
    local at = i
    i = i + len
    return at, cp, len
  end
end

--- output.width(s) -> the number of terminal cells s takes
function M.width(s)
  local w = 0
  for _, cp in codepoints(s) do w = w + cp_width(cp) end
  return w
end

local CONTROL = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

--- output.cell(s [, max]) -> s fit for one table cell: control characters escaped (so that
-- no escape sequence reaches the terminal), cut to max cells with "…".
function M.cell(s, max)
  s = s:gsub("%c", function(c) return CONTROL[c] or format("\\x%02x", byte(c)) end)
  if not max or M.width(s) <= max then return s end
  local w, out = 0, {}
  for at, cp, len in codepoints(s) do
    local cw = cp_width(cp)
    if w + cw > max - 1 then break end
    w = w + cw
    out[#out + 1] = s:sub(at, at + len - 1)
  end
  return concat(out) .. "…"
end

--- output.pad(s, width, right) -> s padded with spaces to width cells (right-aligned if right)
local function pad(s, width, right)
  local fill = width - M.width(s)
  if fill <= 0 then return s end
  if right then return (" "):rep(fill) .. s end
  return s .. (" "):rep(fill)
end
M.pad = pad

--- output.table_lines(columns, rows) -> array of lines
-- columns: { { title, right = bool, max = cells }, ... }; rows: arrays of strings. The last
-- column is not padded on the right.
function M.table_lines(columns, rows)
  local ncol = #columns
  local widths, cells = {}, {}
  for c = 1, ncol do widths[c] = M.width(columns[c][1]) end
  for r, row in ipairs(rows) do
    local line = {}
    for c = 1, ncol do
      local s = M.cell(row[c] or "", columns[c].max)
      line[c] = s
      local w = M.width(s)
      if w > widths[c] then widths[c] = w end
    end
    cells[r] = line
  end
  local function render(line)
    local parts = {}
    for c = 1, ncol do
      local s = line[c]
      if c == ncol and not columns[c].right then parts[c] = s
      else parts[c] = pad(s, widths[c], columns[c].right) end
    end
    return (concat(parts, "  "):gsub("%s+$", ""))
  end
  local titles = {}
  for c = 1, ncol do titles[c] = columns[c][1] end
  local out = { render(titles) }
  for r = 1, #cells do out[r + 1] = render(cells[r]) end
  return out
end

---------------------------------------------------------------------------------------------
-- Bar chart of a distribution

-- Fill characters of the segments, one per level in order (they repeat after the last).
M.BLOCKS = { "█", "▓", "▒", "░", "▞", "▚", "▖", "▘" }

--- output.bar(counts, width) -> string of width cells: segment i is BLOCKS[i] repeated in
-- proportion to counts[i] (largest remainder, so the segments fill the bar exactly; a
-- non-zero count gets at least one cell when there is room). "" when all counts are 0.
function M.bar(counts, width)
  local total, n = 0, #counts
  for i = 1, n do total = total + counts[i] end
  if total <= 0 or width <= 0 then return "" end
  local cells, used, rema = {}, 0, {}
  for i = 1, n do
    local exact = counts[i] * width / total
    cells[i] = floor(exact)
    used = used + cells[i]
    rema[i] = { i = i, r = exact - cells[i] }
  end
  sort(rema, function(a, b) if a.r ~= b.r then return a.r > b.r end return a.i < b.i end)
  for k = 1, width - used do cells[rema[k].i] = cells[rema[k].i] + 1 end
  -- a visible level should not vanish: take a cell from the largest segment
  for i = 1, n do
    if counts[i] > 0 and cells[i] == 0 then
      local big = 1
      for j = 2, n do if cells[j] > cells[big] then big = j end end
      if cells[big] > 1 then cells[big], cells[i] = cells[big] - 1, 1 end
    end
  end
  local out = {}
  for i = 1, n do out[i] = M.BLOCKS[(i - 1) % #M.BLOCKS + 1]:rep(cells[i]) end
  return concat(out)
end

---------------------------------------------------------------------------------------------
-- Output sink

--- output.WRITE_ERROR: the metatable of the value a sink raises when a write fails;
-- fields: message, errno, closed (true when the reader went away: EPIPE).
local WriteError = { __tostring = function(e) return "cannot write output: " .. tostring(e.message) end }
M.WRITE_ERROR = WriteError
local EPIPE = 32

--- output.sink(fh [, before_write]) -> sink: sink:put(s, ...), sink:line(s), sink:flush().
-- Text is buffered and written in chunks of 64 KiB; a failed write raises a WRITE_ERROR
-- value (so output to a closed pipe stops at once). before_write() runs before each write
-- (the progress bar clears its line there).
function M.sink(fh, before_write)
  local buf, size = {}, 0
  local sink = {}
  function sink.flush()
    if size > 0 then
      local text = concat(buf)
      buf, size = {}, 0
      if before_write then before_write() end
      local ok, msg, errno = fh:write(text)
      if ok then ok, msg, errno = fh:flush() end
      if not ok then
        local closed = errno == EPIPE or (type(msg) == "string" and msg:find("Broken pipe", 1, true) ~= nil)
        error(setmetatable({ message = msg, errno = errno, closed = closed }, WriteError), 0)
      end
    end
  end
  function sink.put(...)
    for i = 1, select("#", ...) do
      local s = select(i, ...)
      buf[#buf + 1] = s
      size = size + #s
    end
    if size >= 65536 then sink.flush() end
  end
  function sink.line(s) sink.put(s, "\n") end
  return sink
end

---------------------------------------------------------------------------------------------
-- Progress bar

local BAR_WIDTH = 24

local function thousands(n)
  local s = format("%d", n)
  return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
end

--- output.progress(enabled [, fh]) -> bar
-- bar:page(page [, label]): one more page read (page.data: its items; page.run_resolved_call_count:
-- the total when known); a new label starts a new count. bar:clear() erases the line (before
-- other output), bar:done() erases it for good. When not enabled every method does nothing.
function M.progress(enabled, fh)
  local bar = { pages = 0, items = 0 }
  if not enabled then
    function bar.page() end
    function bar.clear() end
    function bar.done() end
    return bar
  end
  fh = fh or io.stderr
  local shown, label = false, nil
  local function draw()
    local parts = { "\r\27[K" }
    if label then parts[#parts + 1] = label .. " " end
    local total = bar.total
    if total and total > 0 then
      local ratio = bar.items / total
      if ratio > 1 then ratio = 1 end
      local full = floor(ratio * BAR_WIDTH + 0.5)
      parts[#parts + 1] = format("%s%s %3d%%  %s/%s items, %d %s",
        ("█"):rep(full), ("░"):rep(BAR_WIDTH - full), floor(ratio * 100), thousands(bar.items),
        thousands(total), bar.pages, bar.pages == 1 and "page" or "pages")
    else
      parts[#parts + 1] = format("%s items, %d %s", thousands(bar.items), bar.pages,
        bar.pages == 1 and "page" or "pages")
    end
    fh:write(concat(parts))
    fh:flush()
    shown = true
  end
  function bar.page(page, new_label)
    if new_label ~= nil and new_label ~= label then
      label, bar.pages, bar.items, bar.total = new_label, 0, 0, nil
    end
    bar.pages = bar.pages + 1
    local data = type(page) == "table" and page.data
    if type(data) == "table" then bar.items = bar.items + #data end
    local total = type(page) == "table" and page.run_resolved_call_count
    if type(total) == "number" then bar.total = total end
    draw()
  end
  function bar.clear()
    if shown then
      fh:write("\r\27[K")
      fh:flush()
      shown = false
    end
  end
  bar.done = bar.clear
  return bar
end

return M
