--- pagegen: deterministic, realistic response bodies for the Bland Evals list endpoints of a
-- run, used as decoder test input and by the fake API (spec/support/fakeapi/handler.lua).
--
--   GET /v1/evals/runs/{run_id}/call-results     pagegen.call_results_page(opts)
--   GET /v1/evals/runs/{run_id}/agent-snapshots  pagegen.agent_snapshots_page(opts)
--   GET /v1/evals/runs/{run_id}/agent-results    pagegen.agent_results_page(opts)
-- (and pagegen.call_results(opts), pagegen.run_info(opts): the values without the text)
--
-- Each returns `text, value`: the JSON body, and the Lua table a decoder should produce
-- for it with keep_nulls=true, with JSON null as `opts.null` (default `pagegen.null`, a
-- sentinel table; set it to cjson.null / blandeval.null to compare with a decoder's output).
-- On Lua 5.4 the integer fields (counts, ms, tokens, position) are Lua integers and the
-- fractional ones (scores, durations, confidence, costs, some weights) are floats.
--
-- What the text exercises (API reference sections 3.4-3.7): fixed key order (the doc's
-- example order); nulls wherever the doc says nullable; floats always written with a '.' or
-- exponent ("88.0"), using the shortest of %.14g..%.17g that reads back exactly; strings with
-- raw UTF-8 (2-, 3- and 4-byte), the same characters as \u escapes (BMP and UTF-16 surrogate
-- pairs, lower- and upper-case hex, per string either all escaped, none, or a per-character
-- mix), \" \\ \n \t \/ and \u0027, and markdown paragraphs of a few hundred bytes.
-- Output is compact by default; opts.pretty = true indents like the doc's examples.
--
-- Determinism: everything comes from a private PRNG (Lehmer / Park-Miller, modulus 2^31-1)
-- whose intermediates stay below 2^48, so Lua 5.4 integers and LuaJIT doubles compute the
-- same sequence: same options -> byte-identical text on both interpreters. A call result's
-- content depends only on (seed, its index, agents), so pages are slices of one run: items
-- 26-50 of {count=50} equal the items of {after_index=25, count=25} (only the choice of
-- escape style in the text may differ; the decoded values are identical).
--
-- pagegen.encode(value [, null] [, pretty]) writes any Lua value as JSON with the same writer
-- (minimal escaping, raw UTF-8): plain tables become arrays when their keys are exactly 1..#t
-- (an empty table is []), otherwise objects with sorted keys; numbers are integers when
-- math.type says so (5.4) or, on LuaJIT, when integral; `null` (default pagegen.null) -> null.

local M = {}

local floor, fmt, byte, sub = math.floor, string.format, string.byte, string.sub
local concat, sort = table.concat, table.sort
local mtype = math.type                                  -- nil on LuaJIT
local tointeger = math.tointeger or function(x) return x end

M.null = setmetatable({}, { __tostring = function() return "pagegen.null" end })

---------------------------------------------------------------------------------------------
-- PRNG. x' = 48271 x mod (2^31-1). 48271 * (2^31-2) < 2^47, exact as an int64 and a double.

local MOD, MUL = 2147483647, 48271

local Rng = {}
Rng.__index = Rng
function Rng:next() self.x = self.x * MUL % MOD; return self.x end
function Rng:int(lo, hi) return lo + self:next() % (hi - lo + 1) end -- bias is irrelevant here
function Rng:chance(pct) return self:next() % 100 < pct end
function Rng:pick(list) return list[self:int(1, #list)] end

-- a*b mod MOD without any intermediate above 2^48 (a*b itself can reach 2^62).
local function mulmod(a, b)
  local bh, bl = floor(b / 65536), b % 65536
  return ((a * bh % MOD) * 65536 + a * bl) % MOD
end

-- Fold integer v into hash h. Squaring makes it non-linear, so neighbouring indexes get
-- unrelated streams (a plain LCG step would make item i+1 a fixed offset of item i).
local function mix(h, v)
  h = (h * MUL + v % MOD + 12345) % MOD
  h = (mulmod(h, h) + h) % MOD
  h = h * MUL % MOD
  return h == 0 and 1 or h
end

local function norm_int(n) return tointeger(floor(n)) end  -- 3.0 -> 3 on 5.4

-- Independent stream for (seed, tag, index): run-level data, each roster agent and each call
-- result get their own, which is what makes pages composable.
local function stream(seed, tag, index)
  local h = mix(mix(mix(20260527, norm_int(seed) % MOD), tag), index)
  local r = setmetatable({ x = h }, Rng)
  r:next(); r:next()
  return r
end

local T_RUN, T_AGENT, T_CALL, T_STYLE, T_USER = 1, 2, 3, 4, 5
local T_ALT_AGENT, T_ALT_CALL, T_ALT_RESULT = 6, 7, 8      -- ids of a regression re-run

--- pagegen.rng(seed) -> generator with :next() (1..2^31-2), :int(lo, hi), :chance(pct), :pick(list)
function M.rng(seed) return stream(seed, T_USER, 0) end

---------------------------------------------------------------------------------------------
-- Value tree. The generator builds annotated nodes because a plain table cannot say key
-- order, and on LuaJIT cannot tell 88.0 from 88. plain() strips them to the decoder's view.

local OBJ, ARR, FLT = {}, {}, {}                     -- metatables used as type tags
local NULL = setmetatable({}, { __tostring = function() return "null" end })

local function obj(t) return setmetatable(t, OBJ) end       -- { "k1", v1, "k2", v2, ... }
local function arr(t) return setmetatable(t, ARR) end
local function flt(x) return setmetatable({ x + 0.0 }, FLT) end
local function num(x) return getmetatable(x) == FLT and x[1] or x end   -- node -> number

local function plain(v, null)
  if v == NULL then return null end
  if type(v) ~= "table" then return v end
  local mt, out = getmetatable(v), {}
  if mt == FLT then return v[1] end
  if mt == OBJ then
    for i = 1, #v, 2 do out[v[i]] = plain(v[i + 1], null) end
  else
    for i = 1, #v do out[i] = plain(v[i], null) end
  end
  return out
end

---------------------------------------------------------------------------------------------
-- JSON writer.

local function is_int(x)
  if mtype then return mtype(x) == "integer" end
  -- LuaJIT: all numbers are doubles, so integral means integer, except -0 (kept a float)
  return x == floor(x) and x > -2^53 and x < 2^53 and not (x == 0 and 1 / x < 0)
end

local function float_text(x)
  if x ~= x or x == math.huge or x == -math.huge then
    error("pagegen: " .. tostring(x) .. " has no JSON representation", 0)
  end
  local s
  for p = 14, 17 do
    s = fmt("%." .. p .. "g", x)
    if tonumber(s) == x then break end
  end
  if not s:find("[.eE]") then s = s .. ".0" end       -- keep it a fraction literal
  return s
end

local SHORT = { [8] = "\\b", [9] = "\\t", [10] = "\\n", [12] = "\\f", [13] = "\\r",
                [34] = '\\"', [92] = "\\\\" }
local LEAD_BITS = { 32, 16, 8 }                         -- payload modulus of a 2/3/4-byte lead

local function uesc(cp, upper)
  local f = upper and "\\u%04X" or "\\u%04x"
  if cp < 0x10000 then return fmt(f, cp) end
  cp = cp - 0x10000                                     -- outside the BMP: surrogate pair
  return fmt(f, 0xD800 + floor(cp / 1024)) .. fmt(f, 0xDC00 + cp % 1024)
end

-- Writes s as a JSON string. With a style rng, each string that needs any care draws a style:
-- mode 0 raw UTF-8, 1 every non-ASCII char (and ') as \u, 2 a per-character coin flip; hex
-- case; whether '/' becomes \/. Assumes s is valid UTF-8 (it only ever holds our own strings).
local function write_string(buf, s, rng)
  if not s:find("[^0-9A-Za-z _.:%-]") then buf[#buf + 1] = '"' .. s .. '"'; return end
  local mode, upper, slash = 0, false, false
  if rng then
    local r = rng:int(0, 99)
    mode = r < 45 and 0 or r < 75 and 1 or 2
    upper, slash = rng:chance(20), rng:chance(30)
  end
  local i, n = 1, #s
  buf[#buf + 1] = '"'
  while i <= n do
    local c = byte(s, i)
    if c < 0x80 then
      local e = SHORT[c]
      if e then buf[#buf + 1] = e
      elseif c < 0x20 then buf[#buf + 1] = fmt("\\u%04x", c)
      elseif c == 47 and slash then buf[#buf + 1] = "\\/"
      elseif c == 39 and mode == 1 then buf[#buf + 1] = "\\u0027"
      else buf[#buf + 1] = string.char(c) end
      i = i + 1
    else
      local len = c >= 0xF0 and 4 or c >= 0xE0 and 3 or 2
      if mode == 1 or (mode == 2 and rng:chance(50)) then
        local cp = c % LEAD_BITS[len - 1]
        for k = i + 1, i + len - 1 do cp = cp * 64 + byte(s, k) % 64 end
        buf[#buf + 1] = uesc(cp, upper)
      else
        buf[#buf + 1] = sub(s, i, i + len - 1)
      end
      i = i + len
    end
  end
  buf[#buf + 1] = '"'
end

local function plain_keys(t)           -- nil if t is a sequence 1..#t (or empty): an array
  local n, count, keys = #t, 0, {}
  for k in pairs(t) do count = count + 1; keys[count] = k end
  if count == n then return nil end
  sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    return a < b
  end)
  return keys
end

local write

local function write_seq(buf, ctx, depth, open, close, n, key_at, val_at)
  if n == 0 then buf[#buf + 1] = open .. close; return end
  buf[#buf + 1] = open
  local nl = ctx.pretty and "\n" .. ("  "):rep(depth + 1)
  for i = 1, n do
    if i > 1 then buf[#buf + 1] = "," end
    if nl then buf[#buf + 1] = nl end
    if key_at then
      local k = key_at(i)
      write_string(buf, type(k) == "string" and k or tostring(k), nil)
      buf[#buf + 1] = ctx.pretty and ": " or ":"
    end
    write(buf, val_at(i), ctx, depth + 1)
  end
  if nl then buf[#buf + 1] = "\n" .. ("  "):rep(depth) end
  buf[#buf + 1] = close
end

function write(buf, v, ctx, depth)
  local t = type(v)
  if v == NULL or rawequal(v, ctx.null) then buf[#buf + 1] = "null"
  elseif t == "string" then write_string(buf, v, ctx.rng)
  elseif t == "number" then buf[#buf + 1] = is_int(v) and fmt("%d", v) or float_text(v)
  elseif t == "boolean" then buf[#buf + 1] = v and "true" or "false"
  elseif t == "table" then
    local mt = getmetatable(v)
    if mt == FLT then buf[#buf + 1] = float_text(v[1])
    elseif mt == OBJ then
      write_seq(buf, ctx, depth, "{", "}", #v / 2,
        function(i) return v[2 * i - 1] end, function(i) return v[2 * i] end)
    elseif mt == ARR then
      write_seq(buf, ctx, depth, "[", "]", #v, nil, function(i) return v[i] end)
    else
      local keys = plain_keys(v)
      if keys then
        write_seq(buf, ctx, depth, "{", "}", #keys,
          function(i) return keys[i] end, function(i) return v[keys[i]] end)
      else
        write_seq(buf, ctx, depth, "[", "]", #v, nil, function(i) return v[i] end)
      end
    end
  else
    error("pagegen: cannot encode a " .. t, 0)
  end
end

--- pagegen.encode(value [, null [, pretty]]) -> JSON text (see the header).
function M.encode(value, null, pretty)
  local buf = {}
  write(buf, value, { null = null == nil and M.null or null, pretty = pretty }, 0)
  return concat(buf)
end

local function render(tree, seed, opts)
  local null = opts.null == nil and M.null or opts.null
  local buf = {}
  write(buf, tree, { null = NULL, rng = stream(seed, T_STYLE, 0), pretty = opts.pretty }, 0)
  return concat(buf), plain(tree, null)
end

---------------------------------------------------------------------------------------------
-- Ids and timestamps.

local function uuid(r)   -- version 4 layout, so it looks like what the API returns
  return fmt("%04x%04x-%04x-%04x-%04x-%04x%04x%04x", r:int(0, 65535), r:int(0, 65535),
    r:int(0, 65535), 0x4000 + r:int(0, 4095), 0x8000 + r:int(0, 16383),
    r:int(0, 65535), r:int(0, 65535), r:int(0, 65535))
end

-- Civil date <-> days since 1970-01-01 (H. Hinnant's algorithms; floor keeps them exact).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * (m > 2 and m - 3 or m + 9) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  return yoe + era * 400 + (m <= 2 and 1 or 0), m, d
end

local DAY, HOUR = 86400000, 3600000

local function iso(ms)   -- integer ms since the epoch -> 2026-05-27T10:00:06.000Z
  local day = floor(ms / DAY)
  local rest = ms - day * DAY
  local y, m, d = civil_from_days(day)
  return fmt("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, floor(rest / HOUR),
    floor(rest / 60000) % 60, floor(rest / 1000) % 60, rest % 1000)
end

-- Same time of day one calendar month later, clamped to the month's end: the doc's example
-- expiry is one month after call_started_at.
local function plus_month(ms)
  local day = floor(ms / DAY)
  local y, m, d = civil_from_days(day)
  if m == 12 then y, m = y + 1, 1 else m = m + 1 end
  local last = days_from_civil(m == 12 and y + 1 or y, m == 12 and 1 or m + 1, 1)
             - days_from_civil(y, m, 1)
  return days_from_civil(y, m, d < last and d or last) * DAY + (ms - day * DAY)
end

---------------------------------------------------------------------------------------------
-- Text corpus. Every special-character class the decoder must handle appears several times;
-- the writer then decides per string whether those characters go out raw or escaped.

local SENTENCES = {
  "The agent greeted the caller by name and confirmed the account on the first attempt.",
  "Customer José Muñoz asked for a refund of €49.99 and the agent processed it without escalation.",
  'At 01:12 the customer said "that\'s exactly what I needed" 😀 and ended the call happy.',
  "The agent read the internal path `C:\\Policies\\refunds.md` aloud, which callers should never hear.",
  "Zoë Müller's reschedule request was handled, but the new time was never repeated back to her.",
  'The phrase "no problem at all" was used three times, which made the agent sound scripted.',
  "The policy link https://help.example.com/billing/refunds?lang=es was shared by SMS as promised.",
  "La señora asked twice whether the fee was waived; the agent's answer stayed ambiguous.",
  "Tone stayed calm and friendly throughout 👍, even when the caller interrupted repeatedly.",
  "The order code was checked against `^[A-Z]{2}\\d{4}$` before the agent read it back.",
  "The caller's name (François Dubé) was mispronounced once and corrected right away.",
  "The transfer to billing was unnecessary — the agent had the tools to resolve it 🙏.",
  "東京 office hours (9:00–18:00 JST) were quoted correctly for the Ñandú Café branch.",
  "Der Kunde bestätigte die Lieferadresse in Köln; no follow-up was needed 🎉.",
}

local QUOTES = {
  "Hola, soy José — ¿me puede ayudar con mi factura?",
  'I said "cancel it", not "pause it"!',
  "Thanks so much 😀",
  "My account number is 4471\\B, with a backslash at the end.",
  "Let me check that for you…\tOne moment please.",
  "Zoë here, I'm calling about the Müller account.",
  "The link is https://bland.ai/evals/runs/latest, can you open it?",
  "Great, see you Tuesday 👍🎉",
  "Ñandú Café, a table for two at 7:30 p.m.",
  "First, your name.\nSecond, the order number.",
  "東京の予約を確認しました。",
  "It's saved under C:\\Users\\Renée\\Desktop\\invoice.pdf",
  "Name\tQty\tPrice\nWidget\t2\t€19.50",
}

local DISPLAY_NAMES = {
  "Inbound - Account Inquiry", "Outbound - Renewal Reminder", "Inbound - Réservation / Booking",
  "Soporte técnico – Señal débil", 'Follow-up: "Where\'s my order?"', "Inbound - Billing 😀",
  "Callback \\ escalations queue", "Zoë's VIP line", "Outbound - Appointment Confirmation",
}

local FAILURES = {
  { "LLM_TIMEOUT", "Grader model did not answer within 30000 ms." },
  { "MODEL_OUTPUT_INVALID", 'Grader returned invalid JSON: unexpected token "\\" at position 17.' },
  { "RATE_LIMITED", "Upstream model rate limit reached; retries exhausted." },
  { "AUDIO_DECODE_ERROR", "Could not decode recording (codec: opus/48000)." },
}
local CALL_FAILURES = {  -- whole-call failures: every agent fails the same way
  { "TRANSCRIPT_UNAVAILABLE", "Transcript snapshot could not be loaded for this call." },
  { "SNAPSHOT_EXPIRED", "Transcript snapshot expired before scoring — re-run not possible." },
}

local SYSTEM_EXTRA = "\n\n## Rules\n- Quote the transcript verbatim, e.g. \"I'd like a refund\".\n"
  .. "- Ignore hold music 🎵 and IVR prompts.\n- Escape paths like `C:\\temp\\x` in code spans."

local CATALOG = {   -- key, name, modality, system_prompt_md, prompt_md
  { "resolution_quality", "Resolution Quality", "text",
    "You are an expert call quality analyst evaluating customer service interactions.",
    "Did the agent fully resolve the customer's issue without requiring a callback?" },
  { "hallucination_detection", "Hallucination Detection", "text",
    "You check every factual claim the agent makes against the knowledge base.",
    "Did the agent state anything that is not supported by the provided context?" },
  { "conversational_quality", "Conversational Quality", "text",
    "You judge how natural, clear and polite a phone conversation sounds.",
    "Rate the flow of the conversation: turn-taking, clarity and courtesy." },
  { "audio_quality", "Audio Quality", "audio",
    "You listen to call recordings and judge the audio itself.",
    "Was the agent's audio clear, without clipping, echo or long silences?" },
  { "scheduling_clarity", "Scheduling Clarity", "text",
    "You review calls that book or move appointments.",
    "Did the agent confirm the date, time and time zone of the appointment?" },
  { "empathy_check", "Empathy Check – “Cortesía” 🙏", "text",
    "Évaluez l'empathie de l'agent envers le client.",
    "Did the agent acknowledge the customer's frustration before solving the problem?" },
  { "appointment_booked", "Appointment Booked", "text",
    "You decide whether a call ended with a confirmed booking.",
    "Was an appointment booked and read back to the caller?" },
  { "voice_clarity", "Voice Clarity (Stimme/Klarheit)", "audio",
    "You grade pronunciation and pacing from the recording.",
    "Was the agent easy to understand at normal speed?" },
}

local LEVEL_TEXT = {   -- level_key -> label, prompt_md
  pass = { "Pass", "The agent resolved the issue completely and the customer confirmed satisfaction." },
  partial = { "Partial", "The agent addressed the issue but the customer expressed some remaining concern." },
  fail = { "Fail", "The issue was not resolved or the customer was transferred unnecessarily." },
  excellent = { "Excellent", 'Flawless: every requirement met and the caller said so ("perfect, thanks!").' },
  good = { "Good", "Minor slips only; nothing the customer noticed." },
  fair = { "Fair", "Noticeable gaps — e.g. the summary was missing — but the goal was met." },
  needs_work = { "Needs work", "The goal was met only after the customer pushed for it." },
  poor = { "Poor", "The customer left without what they called for 😞." },
}
local LEVEL_SETS = {   -- by level count, best first
  [2] = { "pass", "fail" },
  [3] = { "pass", "partial", "fail" },
  [4] = { "excellent", "good", "needs_work", "poor" },
  [5] = { "excellent", "good", "fair", "needs_work", "poor" },
}
local HEX_COLORS = {
  [2] = { "#22c55e", "#ef4444" }, [3] = { "#22c55e", "#f59e0b", "#ef4444" },
  [4] = { "#16a34a", "#84cc16", "#f59e0b", "#ef4444" },
  [5] = { "#16a34a", "#84cc16", "#eab308", "#f97316", "#dc2626" },
}
local NAMED_COLORS = {
  [2] = { "emerald", "rose" }, [3] = { "emerald", "gold", "rose" },
  [4] = { "emerald", "blue", "amber", "rose" },
  [5] = { "indigo", "violet", "gold", "amber", "fog" },
}

---------------------------------------------------------------------------------------------
-- Run-level context and the agent roster (shared by both endpoints for the same seed, so
-- eval_run_agent_snapshot_id in call results points at real snapshot ids).

local function run_context(opts)
  local seed = norm_int(opts.seed or 1)
  local r = stream(seed, T_RUN, 0)
  local ctx = { seed = seed, org_id = uuid(r), run_id = uuid(r) }
  if opts.run_id ~= nil then ctx.run_id = opts.run_id end
  ctx.t0 = days_from_civil(2026, 5, 27) * DAY + 10 * HOUR + r:int(0, 20) * DAY + r:int(0, 7) * HOUR
  ctx.catalog_base = r:int(0, #CATALOG - 1)
  -- Options of the run variants (none changes what a run without them produces):
  -- settled: every call is COMPLETE, FAILED or INSUFFICIENT_EVIDENCE (no PENDING, QUEUED or
  -- RUNNING rows); regression: a re-run of the same calls, see regressed() below.
  ctx.settled = opts.settled and true or false
  ctx.regression = opts.regression and true or false
  ctx.shift = ctx.regression and 2 * HOUR or 0          -- the re-run is created 2 hours later
  return ctx
end

local function roster_agent(ctx, pos)    -- pos is the 0-based `position`
  local r = stream(ctx.seed, T_AGENT, pos)
  local c = CATALOG[(ctx.catalog_base + pos) % #CATALOG + 1]
  local a = { position = pos, id = uuid(r), agent_id = uuid(r), version_id = uuid(r),
              key = c[1], name = c[2], modality = c[3], levels = {}, targets = {} }
  local round = floor(pos / #CATALOG)
  if round > 0 then a.key, a.name = a.key .. "_" .. (round + 1), a.name .. " #" .. (round + 1) end
  a.system = c[4] .. (r:chance(50) and SYSTEM_EXTRA or "")
  a.prompt = c[5]
  a.prompt_version = r:chance(60) and "v3.1.0" or fmt("v%d.%d.%d", r:int(1, 4), r:int(0, 9), r:int(0, 3))
  a.weight = r:pick({ 100, 100, 50, 25, 75, 0, flt(33.5), flt(12.5) })
  if r:chance(70) then                                         -- graded: 2-5 levels
    local n = r:int(2, 5)
    local named = r:chance(50)          -- the doc's enum names, or hex like its example
    for i, key in ipairs(LEVEL_SETS[n]) do
      local lv = { "level_key", key, "label", LEVEL_TEXT[key][1], "prompt_md", LEVEL_TEXT[key][2] }
      if not r:chance(8) then           -- color is optional in 3.7
        lv[7], lv[8] = "color", (named and NAMED_COLORS or HEX_COLORS)[n][i]
      end
      a.levels[i] = obj(lv)
    end
    a.targets[1] = LEVEL_SETS[n][1]
    if n >= 4 and r:chance(30) then a.targets[2] = LEVEL_SETS[n][2] end
  end
  if ctx.regression then a.id = uuid(stream(ctx.seed, T_ALT_AGENT, pos)) end   -- own snapshot
  return a
end

local function roster(ctx, n)
  local list = {}
  for pos = 0, n - 1 do list[pos + 1] = roster_agent(ctx, pos) end
  return list
end

---------------------------------------------------------------------------------------------
-- Call results.

local function reasoning(r, verdict_label)
  local parts = { fmt("**Verdict: %s.**", verdict_label), "\n\n" }
  for _ = 1, r:int(2, 4) do parts[#parts + 1] = r:pick(SENTENCES) .. " " end
  parts[#parts] = parts[#parts]:sub(1, -2)
  parts[#parts + 1] = "\n\n### Evidence\n- " .. r:pick(SENTENCES) .. "\n- " .. r:pick(SENTENCES)
  if r:chance(20) then parts[#parts + 1] = "\n\n```\nfield\tvalue\nstatus\tok\n```" end
  return concat(parts)
end

local function evidence(r, agent, start_limit_ms)
  local items = {}
  for i = 1, r:int(1, 3) do
    local start = r:int(0, start_limit_ms)
    local s_node, e_node = start, start + r:int(800, 9000)
    if r:chance(15) then s_node = NULL end                  -- offsets are nullable
    if r:chance(10) then e_node = NULL end
    local speaker = r:pick({ "agent", "agent", "customer", "customer", "unknown", NULL })
    items[i] = obj({ "source", agent.modality == "audio" and "audio" or r:pick({ "transcript", "transcript", "audio" }),
                     "speaker", speaker, "start_ms", s_node, "end_ms", e_node,
                     "text", r:pick(QUOTES) })
  end
  return arr(items)
end

-- Regression re-runs (opts.regression): the SAME calls (call_id, display name, call_started_at,
-- duration, ended_by, statuses) and the same agents (eval_agent_id, version, key, levels,
-- targets, weight) as the plain run of the same seed, with their own ids (call results, agent
-- results, snapshots) and times 2 hours later. Every verdict is the plain run's, except this
-- rule: the agent at position 0, on each call whose 1-based run index is a multiple of 3 and
-- where the plain run's verdict is a target match, picks the first level below its targets
-- (the level after the 1 or 2 target levels; "fail" for a pass/fail agent) instead: a lower
-- score, is_target_match=false, the new label in reasoning_md's first line. So about a third of
-- that agent's target matches are lost; confidence, evidence, cost and audit do not change,
-- and the call's scores are recomputed from the new verdict.
local function regressed(agent, reason)
  local n = #agent.levels
  local key, score = "fail", 0
  if n > 0 then
    local idx = #agent.targets + 1
    key, score = LEVEL_SETS[n][idx], 100 * (n - idx) / (n - 1)
  end
  local label = LEVEL_TEXT[key][1]
  return key, label, flt(score), false, fmt("**Verdict: %s.**", label) .. reason:gsub("^%*%*Verdict: [^\n]*", "", 1)
end

-- kind: "verdict", "insufficient" or "failed" (the three disjoint outcomes of one verdict).
-- regress: apply the regression rule above to a target match.
local function agent_result(ctx, r, call, agent, kind, created_ms, call_failure, regress)
  local key, label, score, target, conf = NULL, NULL, NULL, NULL, NULL
  local reason, ev, fcode, fmsg, cost = NULL, arr({}), NULL, NULL, NULL
  local in_tok, out_tok, lat = r:int(800, 6000), r:int(40, 600), r:int(400, 9000)
  if kind == "verdict" then
    local n = #agent.levels
    if n > 0 then
      local u = r:int(0, 99)                               -- skewed towards the best level
      local idx = u < 55 and 1 or u < 80 and 2 or r:int(1, n)
      if idx > n then idx = n end
      key, label = LEVEL_SETS[n][idx], LEVEL_TEXT[LEVEL_SETS[n][idx]][1]
      score = flt(100 * (n - idx) / (n - 1))                  -- best level 100, worst 0
      target = false
      for _, t in ipairs(agent.targets) do if t == key then target = true end end
    else                                                      -- pass/fail agent
      target = r:chance(75)
      key, label, score = target and "pass" or "fail", target and "Pass" or "Fail", flt(target and 100 or 0)
    end
    conf = flt(r:int(55, 99) / 100)
    reason, ev = reasoning(r, label), evidence(r, agent, call.duration_ms)
    cost = flt(r:int(50, 400) / 10000)
    if regress and target == true then key, label, score, target, reason = regressed(agent, reason) end
  elseif kind == "insufficient" then
    conf = flt(r:int(10, 45) / 100)
    reason = "**Insufficient evidence.** " .. r:pick({
      "The call lasted only a few seconds and the customer never stated why they called.",
      "The recording is mostly hold music 🎵; nothing the agent said can be graded.",
      'Only the greeting ("Hola, ¿en qué le puedo ayudar?") was captured before the line dropped.' })
    if r:chance(50) then ev = evidence(r, agent, call.duration_ms) end
    cost = flt(r:int(10, 60) / 10000)
  else
    local f = call_failure or r:pick(FAILURES)
    fcode, fmsg = f[1], f[2]
    if r:chance(50) then in_tok = NULL end                     -- nothing was sent to the model
    out_tok = NULL
    if r:chance(30) then lat = NULL end
  end
  local id = uuid(r)
  if ctx.regression then id = uuid(stream(ctx.seed, T_ALT_RESULT, call.index * 1000 + agent.position)) end
  return obj({
    "id", id, "org_id", ctx.org_id, "eval_run_id", ctx.run_id,
    "eval_run_call_result_id", call.id, "eval_run_agent_snapshot_id", agent.id,
    "eval_agent_id", agent.agent_id, "eval_agent_version_id", agent.version_id,
    "call_id", call.call_id,
    "selected_level_key", key, "selected_level_label", label,
    "score_normalized_0_100", score, "is_target_match", target,
    "is_insufficient_evidence", kind == "insufficient", "confidence", conf,
    "reasoning_md", reason, "evidence", ev,
    "failed", kind == "failed", "failure_code", fcode, "failure_message", fmsg,
    "billable_cost_usd", cost,
    "audit", obj({ "prompt_version", agent.prompt_version, "input_tokens", in_tok,
                   "output_tokens", out_tok, "latency_ms", lat }),
    "created_at", iso(created_ms),
  }), num(score)
end

local STATUS_WEIGHTS = {   -- call-result status, percent
  { "COMPLETE", 70 }, { "FAILED", 8 }, { "INSUFFICIENT_EVIDENCE", 8 },
  { "PENDING", 5 }, { "QUEUED", 4 }, { "RUNNING", 5 },
}

local SETTLED_WEIGHTS = {  -- opts.settled: no call is still waiting or running
  { "COMPLETE", 84 }, { "FAILED", 8 }, { "INSUFFICIENT_EVIDENCE", 8 },
}

local function weighted(r, list)
  local u = r:int(0, 99)
  for _, e in ipairs(list) do
    if u < e[2] then return e[1] end
    u = u - e[2]
  end
  return list[1][1]
end

local function round1(x) return flt(floor(x * 10 + 0.5) / 10) end   -- scores: one decimal

-- failed_agent_count = results with failed=true; insufficient_evidence_agent_count = results
-- with is_insufficient_evidence=true. The three outcomes are disjoint, and a verdict that misses
-- the target (is_target_match=false) is not a failure. The counts are computed from the
-- generated results even when include_agent_results=false leaves agent_results empty.
local function call_item(ctx, agents, index, include)
  local r = stream(ctx.seed, T_CALL, index)
  local call = { id = uuid(r), call_id = uuid(r), index = index }
  if ctx.regression then call.id = uuid(stream(ctx.seed, T_ALT_CALL, index)) end
  local status = weighted(r, ctx.settled and SETTLED_WEIGHTS or STATUS_WEIGHTS)
  local created = ctx.t0 + ctx.shift + 5000 + floor((index - 1) / 10) * 1000   -- rows appear in batches
  local call_start = ctx.t0 - r:int(1, 10) * DAY - r:int(0, 86399) * 1000
  call.duration_ms = r:int(150, 9000) * 100                        -- 15.0 s .. 900.0 s
  local started, completed = NULL, NULL
  local start_ms = created + r:int(1, 30) * 1000
  if status ~= "PENDING" and status ~= "QUEUED" then started = iso(start_ms) end
  local done_ms = start_ms + r:int(5000, 90000) + (r:chance(30) and r:int(1, 999) or 0)

  -- outcomes: which agents have a result yet, and of which kind
  local n_done = #agents
  if status == "PENDING" or status == "QUEUED" then n_done = 0
  elseif status == "RUNNING" and n_done > 0 then n_done = r:int(0, n_done - 1) end
  local call_failure = status == "FAILED" and r:pick(CALL_FAILURES) or nil
  local results, failed_n, insuff_n = {}, 0, 0
  local wsum, wtot, tsum, tn, asum, an = 0, 0, 0, 0, 0, 0
  for a = 1, n_done do
    local kind = "verdict"
    if status == "FAILED" then kind = "failed"
    elseif status == "INSUFFICIENT_EVIDENCE" then kind = "insufficient"
    elseif a > 1 then      -- the first agent of a COMPLETE call always gives a verdict
      local u = r:int(0, 99)
      kind = u < 8 and "insufficient" or u < 15 and "failed" or "verdict"
    end
    local agent = agents[a]
    local s
    results[a], s = agent_result(ctx, r, call, agent, kind, start_ms + a * r:int(900, 4000), call_failure,
      ctx.regression and a == 1 and index % 3 == 0)
    if kind == "failed" then failed_n = failed_n + 1
    elseif kind == "insufficient" then insuff_n = insuff_n + 1
    else
      local w = num(agent.weight)
      wsum, wtot = wsum + s * w, wtot + w
      if agent.modality == "audio" then asum, an = asum + s, an + 1 else tsum, tn = tsum + s, tn + 1 end
    end
  end

  local overall, text_s, audio_s = NULL, NULL, NULL
  if status == "COMPLETE" then
    completed = iso(done_ms)
    local nv = tn + an
    if nv > 0 then overall = round1(wtot > 0 and wsum / wtot or (tsum + asum) / nv) end  -- weights all 0: plain mean
    if tn > 0 then text_s = round1(tsum / tn) end
    if an > 0 then audio_s = round1(asum / an) end
  elseif status == "FAILED" or status == "INSUFFICIENT_EVIDENCE" then
    completed = iso(done_ms)
  end

  local started_node, expires, duration = iso(call_start), iso(plus_month(call_start)), flt(call.duration_ms / 1000)
  if r:chance(3) then started_node, expires = NULL, NULL end
  if r:chance(3) then duration = NULL end
  local ref = fmt("snapshots/%s/v%d", call.call_id, r:chance(85) and 1 or 2)
  if r:chance(4) then ref, expires = NULL, NULL end
  local node = obj({
    "id", call.id, "org_id", ctx.org_id, "eval_run_id", ctx.run_id, "call_id", call.call_id,
    "call_display_name", r:chance(10) and NULL or r:pick(DISPLAY_NAMES),
    "call_started_at", started_node, "call_duration_seconds", duration,
    "call_ended_by", r:pick({ "agent", "agent", "customer", NULL }),
    "transcript_snapshot_ref", ref, "transcript_snapshot_expires_at", expires,
    "status", status, "started_at", started, "completed_at", completed,
    "overall_score_normalized_0_100", overall, "text_score_normalized_0_100", text_s,
    "audio_score_normalized_0_100", audio_s,
    "failed_agent_count", failed_n, "insufficient_evidence_agent_count", insuff_n,
    "agent_results", arr(include and results or {}), "created_at", iso(created),
  })
  return node, status, call.id, results
end

--- pagegen.call_results_page(opts) -> text, value
-- opts: seed (integer, default 1), run_id (default: derived from seed), count (items, default
-- 25), after_index (items are run indexes after_index+1 .. after_index+count, default 0),
-- include_agent_results (default false: agent_results is []), agents (per call, default 3),
-- has_more (default false), next_cursor (default: last item's id when has_more, else null),
-- run_status (default "RUNNING" if any item on the page is PENDING/QUEUED/RUNNING, else
-- "COMPLETE"), resolved (run_resolved_call_count; default after_index+count, plus count
-- more when has_more), null (sentinel for the returned table), pretty (indented text).
-- Variants (all pages of one run must get the same): settled (no PENDING, QUEUED or RUNNING
-- calls), regression (the re-run of the same seed's calls described at regressed()).
function M.call_results_page(opts)
  opts = opts or {}
  local ctx = run_context(opts)
  local count = norm_int(opts.count or 25)
  local after = norm_int(opts.after_index or 0)
  local agents = roster(ctx, norm_int(opts.agents or 3))
  local items, busy, last_id = {}, false, nil
  for k = 1, count do
    local status
    items[k], status, last_id = call_item(ctx, agents, after + k, opts.include_agent_results)
    busy = busy or status == "PENDING" or status == "QUEUED" or status == "RUNNING"
  end
  local has_more = opts.has_more and true or false
  local cursor = opts.next_cursor                    -- [INF] in the doc: the last item's id
  if cursor == nil then cursor = has_more and last_id or NULL end
  local tree = obj({
    "data", obj({ "object", "list", "data", arr(items), "has_more", has_more, "next_cursor", cursor }),
    "errors", NULL,
    "run_status", opts.run_status or (busy and "RUNNING" or "COMPLETE"),
    "run_resolved_call_count", opts.resolved ~= nil and opts.resolved
      or after + count + (has_more and count or 0),
  })
  return render(tree, ctx.seed, opts)
end

--- pagegen.agent_snapshots_page(opts) -> text, value
-- opts: seed, run_id, count (agents, default 3), null, pretty. Single page: has_more false,
-- next_cursor null. Agent `position` k here is the agent used as agent k+1 in call results.
function M.agent_snapshots_page(opts)
  opts = opts or {}
  local ctx = run_context(opts)
  local items = {}
  for i, a in ipairs(roster(ctx, norm_int(opts.count or 3))) do
    items[i] = obj({
      "id", a.id, "org_id", ctx.org_id, "eval_run_id", ctx.run_id,
      "eval_agent_id", a.agent_id, "eval_agent_version_id", a.version_id,
      "position", a.position, "key", a.key, "name", a.name, "modality", a.modality,
      "system_prompt_md", a.system, "prompt_md", a.prompt, "prompt_version", a.prompt_version,
      "levels", arr(a.levels), "target_level_keys", arr(a.targets), "weight", a.weight,
      "created_at", iso(ctx.t0 + ctx.shift),
    })
  end
  local tree = obj({
    "data", obj({ "object", "list", "data", arr(items), "has_more", false, "next_cursor", NULL }),
    "errors", NULL,
  })
  return render(tree, ctx.seed, opts)
end

--- pagegen.agent_results_page(opts) -> text, value
-- GET /v1/evals/runs/{run_id}/agent-results: the agent results that call results embed with
-- include_agent_results=true (same values, same ids), flattened in call order then agent order.
-- opts: seed, run_id, agents (default 3), settled, regression (as for call_results_page), the
-- calls to take them from (after_index, count: run indexes after_index+1 .. after_index+count),
-- skip (results dropped from the front, default 0), limit (results kept, default all),
-- has_more (default false), next_cursor (default: the last item's id when has_more, else null),
-- null, pretty. No run_status extras (API reference 5.18).
function M.agent_results_page(opts)
  opts = opts or {}
  local ctx = run_context(opts)
  local agents = roster(ctx, norm_int(opts.agents or 3))
  local after, skip = norm_int(opts.after_index or 0), norm_int(opts.skip or 0)
  local limit = opts.limit and norm_int(opts.limit) or math.huge
  local items, seen = {}, 0
  for k = 1, norm_int(opts.count or 25) do
    local _, _, _, results = call_item(ctx, agents, after + k, true)
    for _, res in ipairs(results) do
      seen = seen + 1
      if seen > skip and #items < limit then items[#items + 1] = res end
    end
  end
  local has_more = opts.has_more and true or false
  local cursor = opts.next_cursor
  if cursor == nil then cursor = has_more and #items > 0 and items[#items][2] or NULL end
  local tree = obj({
    "data", obj({ "object", "list", "data", arr(items), "has_more", has_more, "next_cursor", cursor }),
    "errors", NULL,
  })
  return render(tree, ctx.seed, opts)
end

--- pagegen.call_results(opts) -> { call result, ... }
-- The items of call_results_page(opts) as plain tables (the `value` side only, no text): for
-- fakes that need a run's numbers (summaries, ids) without rendering it. Same opts.
function M.call_results(opts)
  opts = opts or {}
  local ctx = run_context(opts)
  local agents = roster(ctx, norm_int(opts.agents or 3))
  local null = opts.null == nil and M.null or opts.null
  local items, after = {}, norm_int(opts.after_index or 0)
  for k = 1, norm_int(opts.count or 25) do
    items[k] = plain((call_item(ctx, agents, after + k, opts.include_agent_results)), null)
  end
  return items
end

--- pagegen.run_info(opts) -> { org_id =, created_ms =, created_at = }
-- The run-level values every page of (seed, settled, regression) shares: the org, and the
-- run's creation time (the snapshots' created_at; call results are created 5 s and more later).
function M.run_info(opts)
  local ctx = run_context(opts or {})
  return { org_id = ctx.org_id, created_ms = ctx.t0 + ctx.shift, created_at = iso(ctx.t0 + ctx.shift) }
end

--- pagegen.iso(ms) -> "2026-05-27T10:00:06.000Z" (integer ms since the epoch, UTC)
M.iso = iso

--- Nodes that pagegen.encode writes exactly: pagegen.object { "k1", v1, "k2", v2, ... } keeps
-- its key order (and {} is an empty object, not []); pagegen.array(t) is always an array;
-- pagegen.float(x) is always written as a fraction ("88.0"), on LuaJIT too.
M.object, M.array, M.float = obj, arr, flt

-- Field lists in the documented (and emitted) order, for specs that check completeness.
M.fields = {
  call_result = { "id", "org_id", "eval_run_id", "call_id", "call_display_name", "call_started_at",
    "call_duration_seconds", "call_ended_by", "transcript_snapshot_ref",
    "transcript_snapshot_expires_at", "status", "started_at", "completed_at",
    "overall_score_normalized_0_100", "text_score_normalized_0_100", "audio_score_normalized_0_100",
    "failed_agent_count", "insufficient_evidence_agent_count", "agent_results", "created_at" },
  agent_result = { "id", "org_id", "eval_run_id", "eval_run_call_result_id",
    "eval_run_agent_snapshot_id", "eval_agent_id", "eval_agent_version_id", "call_id",
    "selected_level_key", "selected_level_label", "score_normalized_0_100", "is_target_match",
    "is_insufficient_evidence", "confidence", "reasoning_md", "evidence", "failed", "failure_code",
    "failure_message", "billable_cost_usd", "audit", "created_at" },
  evidence = { "source", "speaker", "start_ms", "end_ms", "text" },
  audit = { "prompt_version", "input_tokens", "output_tokens", "latency_ms" },
  snapshot = { "id", "org_id", "eval_run_id", "eval_agent_id", "eval_agent_version_id", "position",
    "key", "name", "modality", "system_prompt_md", "prompt_md", "prompt_version", "levels",
    "target_level_keys", "weight", "created_at" },
  level = { "level_key", "label", "prompt_md", "color" },   -- color is optional
}

return M
