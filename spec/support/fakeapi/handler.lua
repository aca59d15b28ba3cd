--- Content handler of the fake Bland Evals API (LuaJIT under ngx_http_lua: Lua 5.1 code).
--
-- Endpoints (auth: `authorization: KEY` or `Bearer KEY`, KEY one of KEYS below; envelope
-- {data, errors}; errors {"data":null,"errors":[{"error":CODE,"message":...}]}):
--   GET /v1/evals/status                        {enabled: true, gate: "evals_enabled", reason: null}
--   GET /v1/evals/runs                          the run list (5.12): CATALOGUE below, newest first;
--                                               eval_agent_id, workbench_setup_id, status,
--                                               triggered_by, limit, starting_after, ending_before
--   GET /v1/evals/runs/{run_id}                 the EvalRun (3.2); see "Run objects" below
--   GET /v1/evals/runs/{run_id}/call-results    include_agent_results, limit, starting_after,
--                                               ending_before (API reference 1.6, 5.17)
--   GET /v1/evals/runs/{run_id}/agent-results   limit, starting_after, ending_before (5.18): the
--                                               agent_results call-results embeds, flattened in
--                                               call order then agent order; cursor = item id
--   GET /v1/evals/runs/{run_id}/agent-snapshots single page (5.19)
--   GET /_stats?run=ID   {"requests","connections","paths","auth","max_in_flight"} for one
--                        run id (no auth); max_in_flight: slow runs' most concurrent requests.
--                        Requests to /v1/evals/status and /v1/evals/runs count under those paths
--                        as ID, e.g. /_stats?run=/v1/evals/runs
--   GET /_reset          clears all state: stats, the once-per-(run, cursor) faults and the
--                        progress-* runs' request counts
--
-- Run ids (a suffix "@tag" on fault-*, opaque-* and progress-* ids gives the same run with its
-- own state and stats, e.g. "fault-429@t1"). N is 0..5000 everywhere:
--   run-<N>       N call results
--   big-<N>       like run-<N> for N up to 100000 (benchmarks: bench/iterate.lua)
--   run-<other>   anything else after "run-" (e.g. "run-a b/c?d"): 3 call results
--   opaque-<N>    like run-<N>, but call-results cursors are opaque tokens, not item ids
--   slow<MS>-<N>  like run-<N>, but every call-results page takes MS milliseconds longer
--   fault-*       60 call results, and a fault on call-results and agent-results: see Faults
--   pending-<N> queued-<N> running-<N> partial-<N> failed-<N> cancelled-<N>
--                 N call results; the run (and call-results' run_status) has that status
--   cmp-a-<N>, cmp-b-<N>
--                 two runs of the same N calls and agents, where cmp-b's first agent does
--                 worse: the rule is at pagegen's regressed(); see "Comparison runs" below
--   progress-<N>, progress-fail-<N>, progress-cancel-<N>
--                 runs whose status moves on with each GET /v1/evals/runs/{id}; see PROGRESS
-- Items come from pagegen with a seed fixed per run, so every page is a slice of one run.
-- Every item echoes the run id as given (percent-decoded path segment) in eval_run_id.
-- The three agents of a run are its agent snapshots (positions 0, 1, 2).

local pagegen = require "pagegen"

local M = {}
local shm = ngx.shared.fakeapi
local NULL = pagegen.null               -- pagegen.encode writes it as null
local object, float = pagegen.object, pagegen.float    -- ordered JSON object; always a fraction
local floor = math.floor
local AGENTS, FAULT_ITEMS, MAX_RUN, MAX_BIG = 3, 60, 5000, 100000
local SEP = "\31"                       -- joins parts of shared-dict keys
local NO_AUTH = "\1"                    -- stats marker for a missing authorization header
-- The keys accepted: the specs' usual one, and a long distinctive one that specs search for in
-- errors and logs (a short common string would match by chance).
local KEYS = { ["test-key"] = true, ["bk_FaultMatrix_Q7vX2mK9pL4wZ8nR3tY6sJ1"] = true }

local FAULTS = {}
for name in ([[fault-429 fault-503-once fault-500-forever fault-reset fault-truncated
    fault-truncated-json fault-html502 fault-no-cursor fault-stuck-cursor fault-repeat-id
    fault-errors-200 fault-slow fault-deep fault-big fault-not-envelope]]):gmatch("%S+") do
  FAULTS[name] = true
end

local function json(v) return pagegen.encode(v) end

local function send(status, body, ctype)
  ngx.status = status
  ngx.header["Content-Type"] = ctype or "application/json"
  ngx.header["Content-Length"] = #body      -- the gzip filter drops it when it compresses
  ngx.print(body)
end

local function fail(status, code, message)
  send(status, json { data = NULL, errors = { { error = code, message = message } } })
end

-- Headers, then half the body of a Content-Length response, then close: the client sees a
-- transfer error. Written on the raw socket so that neither gzip nor chunking gets in the way.
local function send_cut(body)
  local sock = assert(ngx.req.socket(true))
  sock:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
    .. "\r\nx-request-id: " .. ngx.ctx.request_id .. "\r\n\r\n" .. body:sub(1, math.floor(#body / 2)))
  ngx.exit(444)                            -- nginx closes the connection without a response
end

-- true the first time a (run, cursor) pair asks, until /_reset
local function once(run_id, cursor)
  return (shm:add("once" .. SEP .. run_id .. SEP .. cursor, true))
end

---------------------------------------------------------------------------------------------
-- Stats

local function record(run_id)
  shm:incr("n" .. SEP .. run_id, 1, 0)
  if shm:add("c" .. SEP .. run_id .. SEP .. ngx.var.connection, true) then
    shm:incr("nc" .. SEP .. run_id, 1, 0)
  end
  shm:rpush("p" .. SEP .. run_id, ngx.var.request_uri)
  shm:rpush("a" .. SEP .. run_id, ngx.var.http_authorization or NO_AUTH)
end

-- Shared-dict lists have no range read: pop each value and push it back (one worker, and
-- nothing here yields, so no other request interleaves).
local function read_list(key, map)
  local out = {}
  for i = 1, shm:llen(key) or 0 do
    local v = shm:lpop(key)
    shm:rpush(key, v)
    out[i] = map and map(v) or v
  end
  return out
end

local function stats(run_id)
  return json {
    requests = shm:get("n" .. SEP .. run_id) or 0,
    max_in_flight = shm:get("maxinflight" .. SEP .. run_id) or 0,
    connections = shm:get("nc" .. SEP .. run_id) or 0,
    paths = read_list("p" .. SEP .. run_id),
    auth = read_list("a" .. SEP .. run_id, function(v) return v == NO_AUTH and NULL or v end),
  }
end

---------------------------------------------------------------------------------------------
-- Runs

local function valid_utf8(s)            -- pagegen's writer assumes it
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or c >= 0xC2 and c < 0xE0 and 2 or c >= 0xE0 and c < 0xF0 and 3
      or c >= 0xF0 and c < 0xF5 and 4
    if not len then return false end
    for k = i + 1, i + len - 1 do
      local b = s:byte(k)
      if not b or b < 0x80 or b > 0xBF then return false end
    end
    i = i + len
  end
  return true
end

local function name_seed(name)
  local h = 7
  for i = 1, #name do h = (h * 31 + name:byte(i)) % 2147483647 end
  return h
end

local FIXED = { pending = "PENDING", queued = "QUEUED", running = "RUNNING", partial = "PARTIAL",
  failed = "FAILED", cancelled = "CANCELLED" }
local PROGRESS_END = { progress = "COMPLETE", ["progress-fail"] = "FAILED",
  ["progress-cancel"] = "CANCELLED" }
-- Seeds of the new run families: an offset plus N, so that no two runs share their items.
-- partial-N, cmp-* and progress-* are "settled" (no PENDING/QUEUED/RUNNING call rows), the
-- others keep pagegen's usual mix (running-N really is half done, cancelled-N has rows never
-- scored).
local FIXED_SEED = { pending = 100000, queued = 110000, running = 120000, partial = 130000,
  failed = 140000, cancelled = 150000 }
local CMP_SEED, PROGRESS_SEED = 160000, 170000

local function count(s)                 -- "N" -> N in 0..MAX_RUN, or nil
  local n = s and s:match("^%d+$") and tonumber(s)
  return n and n <= MAX_RUN and n or nil
end

-- run id -> { n = items, seed =, key =, opaque =, fault =, delay =, settled =, regression =,
-- status = (fixed run status), progress = (final status of a progress run) } or nil (404).
-- key names the generated data (seed, count, variant) for the per-worker caches.
local function lookup(run_id)
  if not valid_utf8(run_id) then return nil end
  local base = run_id:match("^[^@]*")   -- a tag "@..." counts on opaque-, fault-, progress- ids
  local run_n = run_id:match("^run%-(%d+)$")
  local big_n = run_id:match("^big%-(%d+)$")
  local ms, slow_n = run_id:match("^slow(%d+)%-(%d+)$")
  local opaque_n = base:match("^opaque%-(%d+)$")
  local family, family_n = run_id:match("^(%l+)%-(%d+)$")
  local side, cmp_n = run_id:match("^cmp%-([ab])%-(%d+)$")
  local kind, progress_n = base:match("^(progress%l*%-?%l*)%-(%d+)$")
  local run, n
  if run_n then
    n = count(run_n)
    run = n and { n = n, seed = n + 1 }
  elseif big_n then
    n = tonumber(big_n)
    run = n <= MAX_BIG and { n = n, seed = n + 1 } or nil
  elseif run_id:match("^run%-") then
    run = { n = 3, seed = 424242 }
  elseif ms then
    n = count(slow_n)
    run = n and { n = n, seed = n + 1, delay = tonumber(ms) / 1000 }
  elseif opaque_n then
    n = count(opaque_n)
    run = n and { n = n, seed = n + 1, opaque = true }     -- same items as run-N
  elseif FAULTS[base] then
    run = { n = FAULT_ITEMS, seed = name_seed(base), fault = base }
  elseif FIXED[family] then
    n = count(family_n)
    run = n and { n = n, seed = FIXED_SEED[family] + n, status = FIXED[family], settled = family == "partial" }
  elseif side then
    n = count(cmp_n)
    run = n and { n = n, seed = CMP_SEED + n, settled = true, regression = side == "b" }
  elseif PROGRESS_END[kind] then
    n = count(progress_n)
    run = n and { n = n, seed = PROGRESS_SEED + n, settled = true, progress = PROGRESS_END[kind] }
  end
  if not run then return nil end
  run.key = table.concat({ run.seed, run.n, run.settled and "s" or "", run.regression and "r" or "" }, ":")
  return run
end

-- pagegen options for a run's items, plus the given ones
local function gen(run, opts)
  opts.seed, opts.settled, opts.regression = run.seed, run.settled, run.regression
  return opts
end

-- Item ids of a run (they depend only on the seed and variant), cached per worker. Built once
-- per run; agents = 0 because an id does not depend on the agents.
local id_cache = {}
local page_cache = {}
local function ids(run)
  local c = id_cache[run.key]
  if not c then
    c = { list = {}, index = {} }
    for k, item in ipairs(pagegen.call_results(gen(run, { count = run.n, agents = 0 }))) do
      c.list[k], c.index[item.id] = item.id, k
    end
    id_cache[run.key] = c
  end
  return c
end

local function token(k) return ngx.encode_base64("c:" .. k) end   -- opaque cursor for item k

-- cursor -> index of the item it names, or nil
local function cursor_index(run, cursor)
  if run.opaque then
    local k = tonumber((ngx.decode_base64(cursor) or ""):match("^c:(%d+)$"))
    return k and k >= 1 and k <= run.n and k or nil
  end
  return ids(run).index[cursor]
end

local function cursor_of(run, k) return run.opaque and token(k) or ids(run).list[k] end

---------------------------------------------------------------------------------------------
-- Digest: what the run object and the agent-results endpoint need to know about all of a
-- run's items, computed once per run and worker (run-5000: about 0.3 s) and kept: it is
-- deterministic, so /_reset leaves it.
--   call_ids[k]      call_id of call result k
--   results[p]       id of agent result p (flattened: call order, then agent order)
--   result_pos[id]   p;  result_call[p] = k;  before[k] = agent results before call k
--   cost[p]          billable_cost_usd of results 1..p, in 1/10000 USD
--   complete, failed calls; insufficient, targets atoms; overall/text/audio = { sum, n } of the
--   COMPLETE calls' scores; last_done = latest completed_at of a call (ISO text) or nil

local digests = {}
local CHUNK = 250                       -- calls per pagegen batch: bounds the garbage per step

local function digest(run)
  local d = digests[run.key]
  if d then return d end
  d = { call_ids = {}, results = {}, result_pos = {}, result_call = {}, before = {}, cost = { [0] = 0 },
        complete = 0, failed = 0, insufficient = 0, targets = 0,
        overall = { 0, 0 }, text = { 0, 0 }, audio = { 0, 0 } }
  local function add(acc, v) if v ~= NULL then acc[1], acc[2] = acc[1] + v, acc[2] + 1 end end
  for after = 0, run.n - 1, CHUNK do
    local items = pagegen.call_results(gen(run, { count = math.min(CHUNK, run.n - after),
      after_index = after, agents = AGENTS, include_agent_results = true }))
    for i, item in ipairs(items) do
      local k = after + i
      d.call_ids[k], d.before[k] = item.call_id, #d.results
      if item.status == "COMPLETE" then
        d.complete = d.complete + 1
        add(d.overall, item.overall_score_normalized_0_100)
        add(d.text, item.text_score_normalized_0_100)
        add(d.audio, item.audio_score_normalized_0_100)
      elseif item.status == "FAILED" then
        d.failed = d.failed + 1
      end
      if item.completed_at ~= NULL and (not d.last_done or item.completed_at > d.last_done) then
        d.last_done = item.completed_at
      end
      for _, res in ipairs(item.agent_results) do
        local p = #d.results + 1
        d.results[p], d.result_pos[res.id], d.result_call[p] = res.id, p, k
        local c = res.billable_cost_usd
        d.cost[p] = d.cost[p - 1] + (c ~= NULL and floor(c * 10000 + 0.5) or 0)
        if res.is_insufficient_evidence then d.insufficient = d.insufficient + 1 end
        if res.is_target_match == true then d.targets = d.targets + 1 end
      end
    end
  end
  digests[run.key] = d
  return d
end

-- The agent snapshots of a run as plain tables (cheap: 3 agents), cached per worker.
local rosters = {}
local function roster(run)
  local r = rosters[run.key]
  if not r then
    local _, value = pagegen.agent_snapshots_page(gen(run, { count = AGENTS }))
    r = value.data.data
    rosters[run.key] = r
  end
  return r
end

---------------------------------------------------------------------------------------------
-- Paging shared by the lists (API reference 1.6)

-- limit and cursors: -> { limit =, sa =, eb =, at = } or nil, code, message (a 400).
-- find(cursor, backward) -> index of the item the cursor names, or nil (INVALID_CURSOR).
local function paging(args, find)
  local limit = args.limit
  if limit == nil then limit = 25
  else
    limit = type(limit) == "string" and limit:match("^%d+$") and tonumber(limit)
    if not limit or limit < 1 or limit > 100 then
      return nil, "BAD_REQUEST", "limit must be an integer between 1 and 100"
    end
  end
  local sa, eb = args.starting_after, args.ending_before
  if sa ~= nil and eb ~= nil then
    return nil, "BAD_REQUEST", "Cannot combine starting_after and ending_before"
  end
  local cursor = sa or eb
  local at
  if cursor ~= nil then
    at = type(cursor) == "string" and find(cursor, eb ~= nil)
    if not at then
      return nil, "INVALID_CURSOR", "Unknown cursor: " .. (type(cursor) == "string" and cursor or "(not one string)")
    end
  end
  return { limit = limit, sa = sa, eb = eb, at = at }
end

-- The slice a page serves of a list of `total` items: first, count, has_more (1-based).
-- ending_before=item `at`: the `limit` items just before it, still in ascending order; has_more
-- says whether items exist before them, and next_cursor is then the FIRST item's id (or token):
-- the value to pass as ending_before to keep paging backwards. Otherwise the `limit` items after
-- item `at` (from the start without a cursor); next_cursor the last one's when has_more.
local function window(p, total)
  if p.eb ~= nil then
    local first = math.max(1, p.at - p.limit)
    return first, p.at - first, first > 1
  end
  local first = (p.at or 0) + 1
  local n = math.min(p.limit, total - first + 1)
  return first, n, first + n - 1 < total
end

---------------------------------------------------------------------------------------------
-- Run objects (GET /v1/evals/runs/{id}, and the run list's items)
--
-- status: run-N, opaque-N, slow*, fault-*, cmp-*: COMPLETE; pending-N etc.: their status;
-- progress runs: see PROGRESS. completed_atom_count is the number of agent results the run's
-- agent-results endpoint serves (0 while PENDING or QUEUED): pagegen's usual runs keep some
-- PENDING/QUEUED/RUNNING call rows even when COMPLETE, so it can be below resolved_atom_count
-- (run-60: 156 of 180); settled runs (partial-N, cmp-*, progress-* at the end) reach it.
-- summary (RunSummary, 3.3) only when COMPLETE or PARTIAL: the means are over COMPLETE calls'
-- non-null scores, rounded to 2 decimals; successful/failed_call_count = COMPLETE/FAILED calls;
-- insufficient_evidence_count and target_match_count count agent results; no threshold, so
-- pass_threshold_pct and overall_pass are null. billable_cost_usd (once terminal): the sum of
-- the completed agent results' costs. started_at = created_at + 1 s (from QUEUED on);
-- completed_at (once terminal) = the latest call completed_at (created_at + 2 s if none).

-- PROGRESS: each GET /v1/evals/runs/{id} of a progress run counts (per run id, tag included;
-- /_reset clears it), and request k sees: k=1 PENDING, 2 QUEUED, 3 RUNNING with a third of the
-- atoms completed, 4 RUNNING with two thirds, 5+ the final status: progress-N COMPLETE (all
-- atoms), progress-fail-N FAILED (two thirds, error_code JUDGE_PROVIDER_UNAVAILABLE),
-- progress-cancel-N CANCELLED (two thirds). Other endpoints (call-results' run_status, the run
-- list) show the current state without counting. The items are the final run's throughout.
-- -> status, thirds (completed_atom_count = floor(agent results * thirds / 3))
local function state(run_id, run, advance)
  if run.progress then
    local key = "progress" .. SEP .. run_id
    local k = advance and shm:incr(key, 1, 0) or shm:get(key) or 0
    if k <= 1 then return "PENDING", 0
    elseif k == 2 then return "QUEUED", 0
    elseif k <= 4 then return "RUNNING", k - 2
    elseif run.progress == "COMPLETE" then return "COMPLETE", 3
    else return run.progress, 2 end
  end
  local status = run.status or "COMPLETE"
  return status, (status == "PENDING" or status == "QUEUED") and 0 or 3
end

local TERMINAL = { COMPLETE = true, PARTIAL = true, FAILED = true, CANCELLED = true }

local function mean(acc) return acc[2] > 0 and float(floor(acc[1] / acc[2] * 100 + 0.5) / 100) or NULL end

local function summary(d)
  return object {
    "overall_score_mean", mean(d.overall), "text_score_mean", mean(d.text),
    "audio_score_mean", mean(d.audio),
    "successful_call_count", d.complete, "failed_call_count", d.failed,
    "insufficient_evidence_count", d.insufficient, "target_match_count", d.targets,
    "pass_threshold_pct", NULL, "overall_pass", NULL,
  }
end

-- The run list: fixed runs, each one the fake knows (so GET /v1/evals/runs/{id} gives the same
-- values), with how they were started. Served newest first (created_at, then id).
local SETUPS = {   -- workbench setup id, the version its runs pinned
  { "3f6c1d2e-8a4b-4c7d-9e1f-2a3b4c5d6e7f", "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d" },
  { "c2e4a6b8-1d3f-4a5c-b7e9-0f2a4c6e8b1d", "7e5c3a1f-9d7b-4b5f-a3c1-e9f7d5b3a1c2" },
  { "e1d2c3b4-a5f6-4e7d-8c9b-0a1f2e3d4c5b", "4a3b2c1d-0e9f-4a8b-9c7d-6e5f4a3b2c1d" },
}
local CATALOGUE = {   -- id, triggered_by, run_mode, setup (index in SETUPS), metadata
  { "progress-50", "manual", "text" },
  { "cmp-a-300", "manual", "text", 1, { label = "baseline" } },
  { "cmp-b-300", "manual", "text", 1, { label = "candidate", baseline_run_id = "cmp-a-300" } },
  { "pending-20", "manual", "text" }, { "pending-100", "backfill", "text" },
  { "queued-30", "auto", "text", 3 }, { "queued-8", "manual", "audio" },
  { "running-60", "auto", "text", 3 }, { "running-200", "manual", "full" },
  { "partial-80", "auto", "text", 2 }, { "partial-40", "manual", "full" },
  { "partial-120", "backfill", "text", nil, { source = "backfill-2026-05" } },
  { "failed-40", "manual", "audio" }, { "failed-12", "auto", "text", 2 },
  { "cancelled-90", "manual", "text" }, { "cancelled-30", "backfill", "text" },
  { "run-250", "backfill", "text", nil, { source = "backfill-2026-05" } },
  { "run-120", "auto", "text", 2 }, { "run-48", "auto", "text", 2 },
  { "run-60", "manual", "text" }, { "run-100", "manual", "full", 3 },
  { "run-25", "auto", "text", 2 }, { "run-10", "auto", "text", 2 },
  { "run-75", "backfill", "text" }, { "run-200", "backfill", "audio", nil, { source = "nightly" } },
  { "run-33", "manual", "audio" }, { "run-5", "manual", "text" },
  { "run-150", "auto", "full", 3 }, { "run-1", "auto", "text", 2 },
  { "run-15", "auto", "text", 2 }, { "run-18", "manual", "text", nil, { ticket = "QA-1042" } },
  { "run-22", "auto", "text", 3 }, { "run-40", "manual", "full" },
  { "run-55", "auto", "text", 2 }, { "run-64", "backfill", "text" },
  { "run-90", "auto", "text", 3 }, { "run-110", "manual", "text" },
  { "run-7", "auto", "audio" }, { "run-3", "manual", "text" }, { "run-30", "auto", "text", 2 },
}
local listed = {}                       -- id -> catalogue entry
for _, e in ipairs(CATALOGUE) do listed[e[1]] = e end

local function metadata(t)              -- string -> string, keys sorted; {} stays an object
  local keys, flat = {}, {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do flat[#flat + 1] = k; flat[#flat + 1] = t[k] end
  return object(flat)
end

-- The EvalRun (full) or its list item (list = true) for a run in the given state.
local function run_object(run_id, run, status, thirds, list)
  local d = digest(run)
  local done = floor(#d.results * thirds / 3)
  local info = pagegen.run_info(gen(run, {}))
  local e = listed[run_id] or {}
  local setup = SETUPS[e[4]]
  local terminal = TERMINAL[status]
  local f = {
    id = run_id, org_id = info.org_id, status = status,
    triggered_by = e[2] or "manual", run_mode = e[3] or "text",
    workbench_setup_id = setup and setup[1] or NULL,
    workbench_setup_version_id = setup and setup[2] or NULL,
    resolved_call_count = run.n, resolved_agent_count = AGENTS, resolved_atom_count = run.n * AGENTS,
    completed_atom_count = done,
    summary = (status == "COMPLETE" or status == "PARTIAL") and summary(d) or NULL,
    billable_cost_usd = terminal and float(d.cost[done] / 10000) or NULL,
    error_code = status == "FAILED" and "JUDGE_PROVIDER_UNAVAILABLE" or NULL,
    error_message = status == "FAILED"
      and "The grading model provider kept failing for 10 minutes; the run was stopped." or NULL,
    workflow_id = ("evalrun-wf-%010d"):format(name_seed(run_id)),
    metadata = metadata(e[5]),
    created_at = info.created_at,
    started_at = status ~= "PENDING" and pagegen.iso(info.created_ms + 1000) or NULL,
    completed_at = terminal and (d.last_done or pagegen.iso(info.created_ms + 2000)) or NULL,
  }
  local order
  if list then
    order = { "id", "status", "triggered_by", "run_mode", "resolved_call_count",
      "resolved_agent_count", "resolved_atom_count", "completed_atom_count", "summary",
      "billable_cost_usd", "workbench_setup_id", "workbench_setup_version_id", "metadata",
      "created_at", "started_at", "completed_at" }
  else
    local agents = {}
    for i, s in ipairs(roster(run)) do
      agents[i] = object { "eval_agent_id", s.eval_agent_id, "eval_agent_version_id", s.eval_agent_version_id,
        "weight", s.weight, "target_level_keys", pagegen.array(s.target_level_keys) }
    end
    f.submitted_call_ids = pagegen.array(d.call_ids)
    f.submitted_attached_agents = pagegen.array(agents)
    order = { "id", "org_id", "status", "triggered_by", "run_mode", "submitted_call_ids",
      "submitted_attached_agents", "workbench_setup_id", "workbench_setup_version_id",
      "resolved_call_count", "resolved_agent_count", "resolved_atom_count", "completed_atom_count",
      "summary", "billable_cost_usd", "error_code", "error_message", "workflow_id", "metadata",
      "created_at", "started_at", "completed_at" }
  end
  local flat = {}
  for _, k in ipairs(order) do flat[#flat + 1] = k; flat[#flat + 1] = f[k] end
  return object(flat)
end

local function ok(data) send(200, json(object { "data", data, "errors", NULL })) end

---------------------------------------------------------------------------------------------
-- GET /v1/evals/runs

local RUN_STATUS = { PENDING = true, QUEUED = true, RUNNING = true, COMPLETE = true,
  PARTIAL = true, FAILED = true, CANCELLED = true }
local TRIGGERS = { manual = true, auto = true, backfill = true }

local sorted                            -- the catalogue newest first, built on first use
local function catalogue()
  if not sorted then
    sorted = {}
    for i, e in ipairs(CATALOGUE) do
      sorted[i] = { entry = e, run = lookup(e[1]) }
      sorted[i].created = pagegen.run_info(gen(sorted[i].run, {})).created_ms
    end
    table.sort(sorted, function(a, b)
      if a.created ~= b.created then return a.created > b.created end
      return a.entry[1] < b.entry[1]
    end)
  end
  return sorted
end

local function runs_list(args)
  local filter = {}
  for _, name in ipairs { "eval_agent_id", "workbench_setup_id", "status", "triggered_by" } do
    local v = args[name]
    if v ~= nil and type(v) ~= "string" then
      return fail(400, "BAD_REQUEST", name .. " must be given once, with a value")
    end
    filter[name] = v
  end
  if filter.status and not RUN_STATUS[filter.status] then
    return fail(400, "BAD_REQUEST",
      "status must be one of PENDING, QUEUED, RUNNING, COMPLETE, PARTIAL, FAILED, CANCELLED")
  end
  if filter.triggered_by and not TRIGGERS[filter.triggered_by] then
    return fail(400, "BAD_REQUEST", "triggered_by must be manual, auto or backfill")
  end

  -- the matching runs, with their current status, and each run's place in the full list
  local all, rows, pos = catalogue(), {}, {}
  for i, c in ipairs(all) do
    local id, e = c.entry[1], c.entry
    pos[id] = i
    local status, thirds = state(id, c.run, false)
    local setup = SETUPS[e[4]]
    local keep = (not filter.status or status == filter.status)
      and (not filter.triggered_by or e[2] == filter.triggered_by)
      and (not filter.workbench_setup_id or (setup and setup[1]) == filter.workbench_setup_id)
    if keep and filter.eval_agent_id then
      keep = false
      for _, s in ipairs(roster(c.run)) do
        if s.eval_agent_id == filter.eval_agent_id then keep = true end
      end
    end
    if keep then rows[#rows + 1] = { id = id, run = c.run, status = status, thirds = thirds, at = i } end
  end

  -- A cursor is any listed run id, matching the filters or not: starting_after=X serves the
  -- matching runs after X in the full list, ending_before=X those before it.
  local p, code, message = paging(args, function(cursor, backward)
    local i = pos[cursor]
    if not i then return nil end
    local n = 0
    for _, r in ipairs(rows) do if r.at < i then n = n + 1 end end
    return backward and n + 1 or (rows[n + 1] and rows[n + 1].at == i and n + 1 or n)
  end)
  if not p then return fail(400, code, message) end
  local first, n, has_more = window(p, #rows)
  local items = {}
  for k = first, first + n - 1 do
    local r = rows[k]
    items[#items + 1] = run_object(r.id, r.run, r.status, r.thirds, true)
  end
  local next_cursor = NULL
  if has_more then next_cursor = p.eb ~= nil and rows[first].id or rows[first + n - 1].id end
  return ok(object { "object", "list", "data", pagegen.array(items), "has_more", has_more,
    "next_cursor", next_cursor })
end

---------------------------------------------------------------------------------------------
-- Faults: the fault-* runs' call-results and agent-results, both paged lists, break alike.
-- Most act on "page 2": every request with starting_after, some only once per (run, cursor).
-- fault-deep, fault-big and fault-no-cursor act on the first page (no cursor at all), and
-- fault-not-envelope on every request.

local PAD = ("Padding that makes this page about 3 MB, to exercise a client's body size cap. ")

-- Before the page is made: sends the fault's answer and returns true, or returns nothing
-- (fault-slow has waited; fault-repeat-id has moved p back to repeat the cursor's item).
local function fault_before(run_id, f, p)
  local sa = p.sa
  if f == "fault-not-envelope" then
    send(200, '[{"id":"not-an-envelope"}]')
    return true
  end
  if sa ~= nil then
    if f == "fault-429" and once(run_id, sa) then
      ngx.header["Retry-After"] = "1"
      fail(429, "RATE_LIMITED", "Too many requests, retry after 1 second")
      return true
    elseif f == "fault-503-once" and once(run_id, sa) then
      fail(503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable")
      return true
    elseif f == "fault-500-forever" then
      fail(500, "INTERNAL_SERVER_ERROR", "Internal server error")
      return true
    elseif f == "fault-html502" and once(run_id, sa) then
      send(502, "<html><head><title>502 Bad Gateway</title></head><body><center>"
        .. "<h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>\n",
        "text/html")
      return true
    elseif f == "fault-slow" then
      ngx.sleep(3)
    elseif f == "fault-repeat-id" then
      p.at = p.at - 1
    end
  elseif p.eb == nil and f == "fault-deep" then
    send(200, '{"data":{"object":"list","data":' .. ("["):rep(2000) .. ("]"):rep(2000)
      .. ',"has_more":false,"next_cursor":null},"errors":null}')
    return true
  end
end

-- has_more and next_cursor as the fault leaves them; "@NULL@" for fault_after to make null.
local function fault_cursor(f, p, has_more, next_cursor)
  if p.sa ~= nil and f == "fault-stuck-cursor" then return true, p.sa end
  if p.sa == nil and p.eb == nil and f == "fault-no-cursor" then return true, "@NULL@" end
  return has_more, next_cursor
end

-- Sends the made page (text, value: pagegen's) as the fault has it. what names the items in
-- fault-errors-200's message; pad is the item field that fault-big fills.
local function fault_after(run_id, f, p, text, value, what, pad)
  local later = p.sa ~= nil
  if not later and p.eb == nil and f == "fault-no-cursor" then
    text = text:gsub('"next_cursor":"@NULL@"', '"next_cursor":null', 1)
  end
  if later and (f == "fault-reset" and once(run_id, p.sa) or f == "fault-truncated") then
    return send_cut(text)
  elseif later and f == "fault-truncated-json" then
    return send(200, text:sub(1, math.floor(#text / 2)))
  elseif later and f == "fault-errors-200" then
    -- items have no "errors" key, so the first match is the envelope's
    text = text:gsub('"errors":null', '"errors":[{"error":"PARTIAL_FAILURE",'
      .. '"message":"Some ' .. what .. ' could not be loaded"}]', 1)
  elseif not later and p.eb == nil and f == "fault-big" then
    local items = value.data.data
    local per_item = math.ceil(3e6 / math.max(#items, 1))
    local fill = PAD:rep(math.ceil(per_item / #PAD)):sub(1, per_item)
    for _, item in ipairs(items) do item[pad] = fill end
    text = json(value)                    -- nulls in value are pagegen.null
  end
  return send(200, text)
end

---------------------------------------------------------------------------------------------
-- GET call-results

local function call_results(run_id, run, args)
  if run.delay then
    -- how many of this run's requests wait at once: the proof that a client overlaps them
    local key = "inflight" .. SEP .. run_id
    local now = shm:incr(key, 1, 0)
    if now > (shm:get("maxinflight" .. SEP .. run_id) or 0) then shm:set("maxinflight" .. SEP .. run_id, now) end
    ngx.sleep(run.delay)
    shm:incr(key, -1)
  end
  local include = args.include_agent_results
  if include == nil or include == "false" then include = false
  elseif include == "true" then include = true
  else return fail(400, "BAD_REQUEST", "include_agent_results must be true or false") end

  local p, code, message = paging(args, function(cursor) return cursor_index(run, cursor) end)
  if not p then return fail(400, code, message) end
  local f = run.fault
  if f and fault_before(run_id, f, p) then return end

  -- The slice: items first .. first+count-1 (1-based run indexes); see window().
  local first, count, has_more = window(p, run.n)
  local next_cursor
  if has_more and (p.eb ~= nil or run.opaque) then
    next_cursor = cursor_of(run, p.eb ~= nil and first or first + count - 1)
  end   -- (otherwise pagegen writes the last item's id when has_more, else null)
  if f then has_more, next_cursor = fault_cursor(f, p, has_more, next_cursor) end

  -- slow runs serve concurrency tests: their pages are made once per worker, so that
  -- the only cost the server adds is the delay
  local key = run.delay and table.concat({ run_id, first, count, tostring(include) }, SEP)
  local text, value
  if key and page_cache[key] then
    text = page_cache[key]
  else
    text, value = pagegen.call_results_page(gen(run, {
      run_id = run_id, count = count, after_index = first - 1,
      include_agent_results = include, agents = AGENTS, has_more = has_more,
      next_cursor = next_cursor, run_status = (state(run_id, run, false)), resolved = run.n,
    }))
    if key then page_cache[key] = text end
  end
  if f then return fault_after(run_id, f, p, text, value, "call results", "call_display_name") end
  return send(200, text)
end

---------------------------------------------------------------------------------------------
-- GET agent-results: pages of the digest's flattened list, made from only the calls they span

local function agent_results(run_id, run, args)
  local d = digest(run)
  local p, code, message = paging(args, function(cursor) return d.result_pos[cursor] end)
  if not p then return fail(400, code, message) end
  local f = run.fault
  if f and fault_before(run_id, f, p) then return end
  local first, n, has_more = window(p, #d.results)
  local next_cursor                     -- default: the last item's id when has_more
  if has_more and p.eb ~= nil then next_cursor = d.results[first] end
  if f then has_more, next_cursor = fault_cursor(f, p, has_more, next_cursor) end
  local opts = gen(run, { run_id = run_id, agents = AGENTS, count = 0, has_more = has_more,
    next_cursor = next_cursor })
  if n > 0 then
    local c1, c2 = d.result_call[first], d.result_call[first + n - 1]
    opts.after_index, opts.count = c1 - 1, c2 - c1 + 1
    opts.skip, opts.limit = first - 1 - d.before[c1], n
  end
  local text, value = pagegen.agent_results_page(opts)
  if f then return fault_after(run_id, f, p, text, value, "agent results", "reasoning_md") end
  return send(200, text)
end

---------------------------------------------------------------------------------------------

function M.handle()
  local request_id = "req_" .. shm:incr("request_id", 1, 0)
  ngx.ctx.request_id = request_id
  ngx.header["x-request-id"] = request_id
  local path = ngx.var.request_uri:match("^[^?]*")
  local args = ngx.req.get_uri_args()

  if path == "/_reset" then
    shm:flush_all()
    shm:flush_expired()
    id_cache = {}
    return send(200, '{"data":{"reset":true},"errors":null}')
  elseif path == "/_stats" then
    return send(200, stats(type(args.run) == "string" and args.run or ""))
  end

  -- The run id is one path segment of the raw URI: it may hold an encoded '/' or '?'. '+' is
  -- literal in a path, but ngx.unescape_uri would turn it into a space.
  local seg, rest = path:match("^/v1/evals/runs/([^/]+)(.*)$")
  local run_id = seg and ngx.unescape_uri((seg:gsub("%+", "%%2B")))
  if run_id then record(run_id)
  elseif path == "/v1/evals/status" or path == "/v1/evals/runs" then record(path) end

  local auth = ngx.var.http_authorization
  if not (auth and (KEYS[auth] or KEYS[auth:match("^Bearer (.*)$") or ""])) then
    return fail(401, "AUTH_FAILURE", "Unauthorized")
  end
  if ngx.req.get_method() ~= "GET" then
    return fail(405, "METHOD_NOT_ALLOWED", "Only GET is implemented")
  end
  if path == "/v1/evals/status" then
    return ok(object { "enabled", true, "gate", "evals_enabled", "reason", NULL })
  elseif path == "/v1/evals/runs" then
    return runs_list(args)
  end
  if not run_id or (rest ~= "" and rest ~= "/call-results" and rest ~= "/agent-results"
      and rest ~= "/agent-snapshots") then
    return fail(404, "NOT_FOUND", "No such endpoint: " .. path)
  end
  local run = lookup(run_id)
  if not run then return fail(404, "EVAL_RUN_NOT_FOUND", "Eval run not found") end
  if rest == "" then
    local status, thirds = state(run_id, run, true)
    return ok(run_object(run_id, run, status, thirds, false))
  elseif rest == "/agent-snapshots" then
    return send(200, (pagegen.agent_snapshots_page(gen(run, { run_id = run_id, count = AGENTS }))))
  elseif rest == "/agent-results" then
    return agent_results(run_id, run, args)
  end
  return call_results(run_id, run, args)
end

return M
