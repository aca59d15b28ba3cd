-- blandeval.analysis: client methods that read a whole run and join its verdicts to the
-- run's agent snapshots: verdicts (an iterator), summary and compare. Pure Lua, for Lua 5.4
-- and LuaJIT 2.1. Each function takes the client as self:
--
--   for name, f in pairs(require "blandeval.analysis") do Client[name] = f end
--
-- They use only client:call_results and client:agent_snapshots, so every transport, retry
-- and error rule of those applies; errors they raise propagate unchanged. A field that is
-- absent or blandeval.null (keep_nulls = true) counts as missing everywhere.

local type, pairs, ipairs, error, pcall, tostring = type, pairs, ipairs, error, pcall, tostring
local sort, format = table.sort, string.format

local M = {}

local EMPTY = {}
local EPSILON = 1e-9      -- a drop of exactly the threshold is not "more than" it

local function str(v) if type(v) == "string" then return v end end
local function num(v) if type(v) == "number" and v == v then return v end end
local function list_of(v) if type(v) == "table" then return v end return EMPTY end

-- Raises a usage error `level` frames above the caller of raise (1: that caller itself).
local function raise(level, fname, argn, fmt, ...)
  error(format("bad argument #%d to '%s' (%s)", argn, fname, format(fmt, ...)), level + 1)
end

local function check_run_id(level, fname, argn, run_id)
  if type(run_id) ~= "string" or run_id == "" then
    raise(level + 1, fname, argn, "run_id must be a non-empty string, got %s",
      run_id == "" and '""' or type(run_id))
  end
  if run_id == "." or run_id == ".." then raise(level + 1, fname, argn, "run_id cannot be %q", run_id) end
end

-- opts: nil or a table whose keys are in allowed (name -> { check, description })
local function check_opts(level, fname, argn, opts, allowed)
  if opts == nil then return EMPTY end
  if type(opts) ~= "table" then raise(level + 1, fname, argn, "opts must be a table, got %s", type(opts)) end
  for k, v in pairs(opts) do
    local a = allowed[k]
    if not a then raise(level + 1, fname, argn, "unknown option '%s'", tostring(k)) end
    if not a[1](v) then raise(level + 1, fname, argn, "option '%s' must be %s", k, a[2]) end
  end
  return opts
end

local function is_function(v) return type(v) == "function" end
local function non_negative(v) return type(v) == "number" and v == v and v >= 0 end

---------------------------------------------------------------------------------------------
-- Snapshots and the join

-- One agent snapshot -> what a verdict is joined to.
local function snapshot_info(s, seq)
  local info = {
    agent = {
      name = str(s.name), key = str(s.key), modality = str(s.modality), weight = num(s.weight),
      snapshot_id = str(s.id), eval_agent_id = str(s.eval_agent_id),
    },
    position = num(s.position), seq = seq,
    levels = {}, level_order = {}, targets = {}, target_keys = {},
  }
  for _, lv in ipairs(list_of(s.levels)) do
    local k = type(lv) == "table" and str(lv.level_key)
    if k and not info.levels[k] then
      info.levels[k] = { key = k, label = str(lv.label), color = str(lv.color) }
      info.level_order[#info.level_order + 1] = k
    end
  end
  for _, k in ipairs(list_of(s.target_level_keys)) do
    if str(k) and not info.targets[k] then
      info.targets[k] = true
      info.target_keys[#info.target_keys + 1] = k
    end
  end
  -- pass/fail agents have no target_level_keys: their verdict's is_target_match decides
  info.has_targets = #info.target_keys > 0
  return info
end

local function by_position(a, b)
  local pa, pb = a.position, b.position
  if pa ~= pb then
    if pa == nil then return false end
    if pb == nil then return true end
    return pa < pb
  end
  return a.seq < b.seq
end

-- The run's snapshots, in position order, and by snapshot id.
local function load_snapshots(self, run_id)
  local list, by_id = {}, {}
  for s in self:agent_snapshots(run_id) do
    if type(s) == "table" then
      local info = snapshot_info(s, #list + 1)
      list[#list + 1] = info
      local id = info.agent.snapshot_id
      if id and not by_id[id] then by_id[id] = info end
    end
  end
  sort(list, by_position)
  return { list = list, by_id = by_id }
end

-- One agent result -> { verdict, agent, level, is_target }. Agents and snapshot levels are
-- shared between the verdicts of one iteration: treat them as read-only.
local function join(snaps, v)
  local sid = str(v.eval_run_agent_snapshot_id)
  local info = sid and snaps.by_id[sid]
  local key = str(v.selected_level_key)
  local agent, level, is_target
  if info then
    agent = info.agent
    level = key and info.levels[key]
    if info.has_targets then
      is_target = key ~= nil and info.targets[key] == true
    else
      is_target = v.is_target_match == true
    end
  else
    agent = { snapshot_id = sid }
    is_target = v.is_target_match == true
  end
  if key and not level then       -- a level the snapshot does not list (pass/fail agents)
    level = { key = key, label = str(v.selected_level_label) }
  end
  return { verdict = v, agent = agent, level = level, is_target = is_target }
end

-- client:call_results(run_id, params with include_agent_results = true), with the usage
-- errors of call_results renamed to fname; level: the caller's frame, counted from here.
local function open(self, fname, level, run_id, params)
  local p = { include_agent_results = true }
  if params ~= nil then
    if type(params) ~= "table" then raise(level, fname, 2, "params must be a table, got %s", type(params)) end
    for k, v in pairs(params) do
      if k ~= "include_agent_results" then p[k] = v end
    end
  end
  local ok, step, it, _, closing = pcall(self.call_results, self, run_id, p)
  if not ok then
    local err = step
    if type(err) == "string" and err:find("bad argument", 1, true) then
      err = err:gsub("^.-:%d+: (bad argument)", "%1")
      err = err:gsub("'call_results'", "'" .. fname .. "'")
      error(err, level)
    end
    error(err, 0)
  end
  return step, it, closing
end

-- The joined stream: step() -> result, verdicts, page; st.snaps once the first item came.
local function stream(self, fname, level, run_id, params)
  local step, it, closing = open(self, fname, level + 1, run_id, params)
  local st = {}
  local function next_item()
    local r, page = step(it)
    if r == nil then return nil end
    local snaps = st.snaps
    if not snaps then
      snaps = load_snapshots(self, run_id)
      st.snaps = snaps
    end
    local out, n = {}, 0
    if type(r) == "table" then
      for _, v in ipairs(list_of(r.agent_results)) do
        if type(v) == "table" then
          n = n + 1
          out[n] = join(snaps, v)
        end
      end
    end
    return r, out, page
  end
  return next_item, it, closing, st
end

--- for r, verdicts, page in client:verdicts(run_id [, params]) do ... end
-- The call results (include_agent_results forced true; other params as call_results), each
-- with its verdicts joined to the run's agent snapshots (fetched once, at the first item):
-- verdicts[i] = { verdict = <agent result>, agent = { name, key, modality, weight,
-- snapshot_id, eval_agent_id } (only snapshot_id when the snapshot is unknown),
-- level = { key, label, color } or nil, is_target = boolean }.
function M.verdicts(self, run_id, params)
  check_run_id(2, "verdicts", 1, run_id)
  local step, it, closing = stream(self, "verdicts", 3, run_id, params)
  return step, it, nil, closing
end

---------------------------------------------------------------------------------------------
-- Summary

-- pass and fail first, then alphabetical: levels the snapshot does not list
local EXTRA_RANK = { pass = 1, fail = 2 }
local function extra_order(a, b)
  local ra, rb = EXTRA_RANK[a] or 3, EXTRA_RANK[b] or 3
  if ra ~= rb then return ra < rb end
  return a < b
end

local function new_entry(agent, info)
  local e = {
    position = info and info.position, snapshot_id = agent.snapshot_id,
    eval_agent_id = agent.eval_agent_id, key = agent.key, name = agent.name,
    modality = agent.modality, weight = agent.weight,
    verdicts = 0, scored = 0, target_hits = 0, scores = 0, insufficient = 0, failed = 0,
    levels = {}, level_order = {}, level_labels = {}, level_colors = {}, target_level_keys = {},
    _sum = 0, _extra = {},
  }
  if info then
    for i, k in ipairs(info.level_order) do
      local lv = info.levels[k]
      e.level_order[i], e.levels[k], e.level_labels[k], e.level_colors[k] = k, 0, lv.label, lv.color
    end
    for i, k in ipairs(info.target_keys) do e.target_level_keys[i] = k end
  end
  return e
end

local function count_verdict(e, j)
  local v = j.verdict
  e.verdicts = e.verdicts + 1
  local failed, insufficient = v.failed == true, v.is_insufficient_evidence == true
  if failed then e.failed = e.failed + 1 end
  if insufficient then e.insufficient = e.insufficient + 1 end
  if not failed and not insufficient then
    e.scored = e.scored + 1
    if j.is_target then e.target_hits = e.target_hits + 1 end
  end
  local s = num(v.score_normalized_0_100)
  if s then
    e.scores = e.scores + 1
    e._sum = e._sum + s
  end
  local lv = j.level
  if lv then
    local k = lv.key
    local n = e.levels[k]
    if n == nil then
      n = 0
      e._extra[#e._extra + 1] = k
      e.level_labels[k] = lv.label
    end
    e.levels[k] = n + 1
  end
end

local function finish_entry(e)
  e.target_hit_rate = e.scored > 0 and e.target_hits / e.scored or nil
  e.mean_score = e.scores > 0 and e._sum / e.scores or nil
  sort(e._extra, extra_order)
  for _, k in ipairs(e._extra) do e.level_order[#e.level_order + 1] = k end
  e._sum, e._extra = nil, nil
  return e
end

-- The per-run counters of a summary, fed one call result at a time: acc.feed(r, joined,
-- snaps) and, at the end, acc.result(snaps, pages). Nothing per call is kept.
local function accumulator(run_id)
  local calls, failed_calls, insufficient_calls, scored_calls = 0, 0, 0, 0
  local score_sum = 0
  local by_status = {}
  local entries, order, unknown          -- snapshot id -> entry; entries in order
  local function start(snaps)
    entries, order, unknown = {}, {}, {}
    for i, info in ipairs(snaps.list) do
      local e = new_entry(info.agent, info)
      order[i] = e
      if info.agent.snapshot_id then entries[info.agent.snapshot_id] = entries[info.agent.snapshot_id] or e end
    end
  end
  local acc = {}
  function acc.feed(r, joined, snaps)
    if not entries then start(snaps) end
    calls = calls + 1
    local status = str(r.status)
    if status then by_status[status] = (by_status[status] or 0) + 1 end
    local nf, ni = num(r.failed_agent_count), num(r.insufficient_evidence_agent_count)
    if nf and nf > 0 then failed_calls = failed_calls + 1 end
    if (ni and ni > 0) or status == "INSUFFICIENT_EVIDENCE" then insufficient_calls = insufficient_calls + 1 end
    local overall = num(r.overall_score_normalized_0_100)
    if overall then
      scored_calls = scored_calls + 1
      score_sum = score_sum + overall
    end
    for _, j in ipairs(joined) do
      local sid = j.agent.snapshot_id
      local e = sid and entries[sid] or unknown[sid or ""]
      if not e then            -- a verdict of a snapshot the run does not list
        e = new_entry({ snapshot_id = sid, eval_agent_id = str(j.verdict.eval_agent_id) })
        unknown[sid or ""] = e
        order[#order + 1] = e
      end
      count_verdict(e, j)
    end
  end
  function acc.result(snaps, pages)
    if not entries then start(snaps) end
    for _, e in ipairs(order) do finish_entry(e) end
    return {
      run_id = run_id,
      pages = pages,
      overall = {
        calls = calls, by_status = by_status, failed_calls = failed_calls,
        insufficient_calls = insufficient_calls, scored_calls = scored_calls,
        mean_overall_score = scored_calls > 0 and score_sum / scored_calls or nil,
      },
      agents = order,
    }
  end
  return acc
end

-- One pass over a run. Holds one page and the per-agent counters, nothing per call.
local function summarize(self, fname, level, run_id, progress)
  local step, it, closing, st = stream(self, fname, level + 1, run_id, nil)
  local acc = accumulator(run_id)
  local pages, last_page = 0, nil
  for r, joined, page in step, it, nil, closing do
    if page ~= last_page then
      last_page = page
      pages = pages + 1
      if progress then progress(page, run_id) end
    end
    acc.feed(r, joined, st.snaps)
  end
  if not st.snaps then st.snaps = load_snapshots(self, run_id) end   -- a run without calls
  return acc.result(st.snaps, pages)
end

local SUMMARY_OPTS = { progress = { is_function, "a function" } }

--- client:summary(run_id [, opts]) -> summary
-- One pass over the run's call results with agent results; opts.progress(page, run_id) is
-- called for every page. summary = { run_id, pages, overall = { calls, by_status,
-- failed_calls, insufficient_calls, scored_calls, mean_overall_score }, agents = { in
-- snapshot position order: { position, snapshot_id, eval_agent_id, key, name, modality,
-- weight, verdicts, scored, target_hits, target_hit_rate, scores, mean_score, insufficient,
-- failed, levels = { [key] = n }, level_order, level_labels, level_colors,
-- target_level_keys } } }.
function M.summary(self, run_id, opts)
  check_run_id(2, "summary", 1, run_id)
  local o = check_opts(2, "summary", 2, opts, SUMMARY_OPTS)
  local s = summarize(self, "summary", 3, run_id, o.progress)   -- not a tail call: keeps levels
  return s
end

---------------------------------------------------------------------------------------------
-- Compare

-- Pairs agents of two runs: by eval_agent_id, then by key among the rest. -> b index ->
-- a index
local function match(alist, blist)
  local a_by_id, a_by_key, used, b_to_a = {}, {}, {}, {}
  for i, a in ipairs(alist) do
    if a.eval_agent_id and not a_by_id[a.eval_agent_id] then a_by_id[a.eval_agent_id] = i end
    if a.key and not a_by_key[a.key] then a_by_key[a.key] = i end
  end
  for j, b in ipairs(blist) do
    local i = b.eval_agent_id and a_by_id[b.eval_agent_id]
    if i and not used[i] then used[i], b_to_a[j] = true, i end
  end
  for j, b in ipairs(blist) do
    if not b_to_a[j] then
      local i = b.key and a_by_key[b.key]
      if i and not used[i] then used[i], b_to_a[j] = true, i end
    end
  end
  return b_to_a
end

-- What identifies an agent of run A in the per-call table: as in A's summary entries, the
-- snapshot's eval_agent_id (or id), or for an unknown snapshot the verdict's eval_agent_id.
local function a_ident(snaps, agent, verdict)
  local sid = agent.snapshot_id
  local info = sid and snaps.by_id[sid]
  if info and info.agent == agent then return agent.eval_agent_id or sid end
  return str(verdict.eval_agent_id) or sid
end

local function delta(a, b, field)
  local x, y = a and a[field], b and b[field]
  if x ~= nil and y ~= nil then return y - x end
end

local COMPARE_OPTS = {
  threshold = { non_negative, "a number >= 0" },
  score_threshold = { non_negative, "a number >= 0" },
  progress = { is_function, "a function" },
}

-- Both runs' call results with agent results, as item, "a" or "b", page: read together
-- with client:many, or one after the other by a client that has no many.
local function both(self, run_a, run_b)
  local p = { include_agent_results = true }
  if self.many then
    return self:many({ { "call_results", run_a, p, tag = "a" }, { "call_results", run_b, p, tag = "b" } },
      { concurrency = 2 })
  end
  local tag, step, it = "a", self:call_results(run_a, p)
  return function()
    while true do
      local r, page = step(it)
      if r ~= nil then return r, tag, page end
      if tag == "b" then return nil end
      tag, step, it = "b", self:call_results(run_b, p)
    end
  end
end

--- client:compare(run_a, run_b [, opts]) -> comparison
-- comparison = { a = summary, b = summary, agents = { { key, name, eval_agent_id, a, b,
-- hit_rate_delta, mean_score_delta, regression } }, changed = { { call_id, key, a_level,
-- b_level, a_target, b_target } }, regression }. Agents pair by eval_agent_id, else by key
-- (key and name: run A's when paired); an agent of one run only has a or b nil and no
-- deltas. An agent regresses when its target hit rate drops by more than opts.threshold
-- (0.05) or its mean score by more than opts.score_threshold (5.0). changed: the calls of
-- both runs (by call_id) where a paired agent's verdict level differs (nil level: failed or
-- insufficient), in run B's order. Both runs are read together (client:many); a call seen
-- in one run is kept (its agents' level strings) until the other run's copy comes, so memory
-- follows how far apart the runs' orders are. opts.progress(page, run_id) sees every page.
function M.compare(self, run_a, run_b, opts)
  check_run_id(2, "compare", 1, run_a)
  check_run_id(2, "compare", 2, run_b)
  local o = check_opts(2, "compare", 3, opts, COMPARE_OPTS)
  local threshold, score_threshold = o.threshold or 0.05, o.score_threshold or 5.0

  -- both runs' agents first: how B's snapshots pair with A's agents
  local snaps = { a = load_snapshots(self, run_a), b = load_snapshots(self, run_b) }
  local alist, blist = {}, {}
  for i, info in ipairs(snaps.a.list) do alist[i] = info.agent end
  for i, info in ipairs(snaps.b.list) do blist[i] = info.agent end
  local b_map = {}                       -- B snapshot id -> A ident, or false
  local b_to_a = match(alist, blist)
  for i, b in ipairs(blist) do
    local a = b_to_a[i] and alist[b_to_a[i]]
    if b.snapshot_id then b_map[b.snapshot_id] = a and (a.eval_agent_id or a.snapshot_id) or false end
  end
  local a_key = {}
  for _, a in ipairs(alist) do
    local id = a.eval_agent_id or a.snapshot_id
    if id and a_key[id] == nil then a_key[id] = a.key or false end
  end

  -- both runs read together; a call seen in one run waits for the other, then is dropped:
  -- per call, agent ident -> "+" or "-" (target) .. level key ("" for none)
  local waiting = { a = {}, b = {} }
  local acc = { a = accumulator(run_a), b = accumulator(run_b) }
  local pages, last = { a = 0, b = 0 }, {}
  local changed, b_count = {}, 0
  local function diff(cid, ea, eb)
    for _, x in ipairs(eb.list) do
      local a_val = ea[x.id]
      if a_val then
        local a_level = a_val:sub(2)
        if a_level == "" then a_level = nil end
        if a_level ~= x.level then
          changed[#changed + 1] = {
            call_id = cid, key = a_key[x.id] or x.key, a_level = a_level, b_level = x.level,
            a_target = a_val:sub(1, 1) == "+", b_target = x.target, _at = eb.at, _k = x.k,
          }
        end
      end
    end
  end
  local ok, err = pcall(function()
    for r, tag, page in both(self, run_a, run_b) do
      if page ~= last[tag] then
        last[tag], pages[tag] = page, pages[tag] + 1
        if o.progress then o.progress(page, tag == "a" and run_a or run_b) end
      end
      local s = snaps[tag]
      local joined = {}
      if type(r) == "table" then
        for _, v in ipairs(list_of(r.agent_results)) do
          if type(v) == "table" then joined[#joined + 1] = join(s, v) end
        end
      end
      acc[tag].feed(r, joined, s)
      local cid = type(r) == "table" and str(r.call_id)
      if cid then
        local e
        if tag == "a" then
          e = waiting.a[cid] or {}
          for _, j in ipairs(joined) do
            local id = a_ident(s, j.agent, j.verdict)
            if id then e[id] = (j.is_target and "+" or "-") .. (j.level and j.level.key or "") end
          end
        else
          b_count = b_count + 1
          e = waiting.b[cid] or { list = {}, at = b_count }
          for k, j in ipairs(joined) do
            local sid = j.agent.snapshot_id
            local id = sid and b_map[sid]
            if id == nil then id = str(j.verdict.eval_agent_id) end     -- unknown snapshot
            if id then
              e.list[#e.list + 1] = { id = id, level = j.level and j.level.key, target = j.is_target,
                key = j.agent.key, k = k }
            end
          end
        end
        local other = tag == "a" and waiting.b[cid] or waiting.a[cid]
        if other then
          if tag == "a" then diff(cid, e, other) else diff(cid, other, e) end
          waiting.a[cid], waiting.b[cid] = nil, nil
        else
          waiting[tag][cid] = e
        end
      end
    end
  end)
  if not ok then error(err, 0) end
  waiting = nil
  -- in run B's order, then the order of the call's verdicts
  sort(changed, function(x, y)
    if x._at ~= y._at then return x._at < y._at end
    return x._k < y._k
  end)
  for _, c in ipairs(changed) do c._at, c._k = nil, nil end
  local sa, sb = acc.a.result(snaps.a, pages.a), acc.b.result(snaps.b, pages.b)

  local agents, regression = {}, false
  local b_to_a = match(sa.agents, sb.agents)
  local b_of = {}
  for j, i in pairs(b_to_a) do b_of[i] = j end
  local function add(a, b)
    local hd, sd = delta(a, b, "target_hit_rate"), delta(a, b, "mean_score")
    local flagged = (hd ~= nil and hd < -threshold - EPSILON)
      or (sd ~= nil and sd < -score_threshold - EPSILON)
    regression = regression or flagged
    local any = a or b
    agents[#agents + 1] = {
      key = any.key, name = any.name, eval_agent_id = any.eval_agent_id, a = a, b = b,
      hit_rate_delta = hd, mean_score_delta = sd, regression = flagged,
    }
  end
  for i, a in ipairs(sa.agents) do add(a, b_of[i] and sb.agents[b_of[i]]) end
  for j, b in ipairs(sb.agents) do
    if not b_to_a[j] then add(nil, b) end
  end
  return { a = sa, b = sb, agents = agents, changed = changed, regression = regression }
end

return M
