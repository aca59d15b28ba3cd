-- blandeval.analysis: verdicts (call results joined to the run's agent snapshots), summary
-- and compare. Against the fake Bland API (spec/support/fakeapi) every expected number is
-- computed here from the raw call results and snapshots, read with plain loops; hand-made
-- runs (a stub client) pin down agent matching, changed calls and the thresholds.
-- Until the methods are wired into the client they are called as analysis.f(client, ...).
-- Runs unchanged under Lua 5.4 and LuaJIT.
local analysis = require "blandeval.analysis"
local fakeapi = require "fakeapi"
local transport = require "transport"

local NULL = require("blandeval.core").null
local IS_54 = _VERSION == "Lua 5.4" and not jit
local EPS = 1e-9

local function near(want, got, what)
  if want == nil then
    assert.is_nil(got, what)
  else
    assert.is_number(got, what)
    assert.is_true(math.abs(want - got) < EPS, what .. ": want " .. tostring(want) .. ", got " .. tostring(got))
  end
end

local function is_integer(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v == math.floor(v)
end

---------------------------------------------------------------------------------------------
-- The expectations, from raw items (what the API returned, read with plain loops)

local function val(v) if v == NULL then return nil end return v end

local function fetch_raw(c, run_id)
  local raw = { calls = {}, snaps = {} }
  for r in c:call_results(run_id, { include_agent_results = true }) do raw.calls[#raw.calls + 1] = r end
  for s in c:agent_snapshots(run_id) do raw.snaps[#raw.snaps + 1] = s end
  return raw
end

local function sorted_snaps(raw)
  local list = {}
  for i, s in ipairs(raw.snaps) do list[i] = s end
  table.sort(list, function(a, b) return a.position < b.position end)
  return list
end

-- Whether a verdict hits its agent's target: a level in target_level_keys (graded agents),
-- the verdict's is_target_match when the snapshot has no targets (pass/fail agents).
local function hits(s, v)
  local key = val(v.selected_level_key)
  if #s.target_level_keys > 0 then
    for _, t in ipairs(s.target_level_keys) do if t == key then return true end end
    return false
  end
  return val(v.is_target_match) == true
end

local function expected_summary(raw)
  local want = { calls = #raw.calls, by_status = {}, failed_calls = 0, insufficient_calls = 0, agents = {} }
  local sum, n = 0, 0
  for _, r in ipairs(raw.calls) do
    want.by_status[r.status] = (want.by_status[r.status] or 0) + 1
    if val(r.failed_agent_count) and r.failed_agent_count > 0 then want.failed_calls = want.failed_calls + 1 end
    local ni = val(r.insufficient_evidence_agent_count)
    if (ni and ni > 0) or r.status == "INSUFFICIENT_EVIDENCE" then
      want.insufficient_calls = want.insufficient_calls + 1
    end
    local s = val(r.overall_score_normalized_0_100)
    if s then sum, n = sum + s, n + 1 end
  end
  want.mean_overall_score = n > 0 and sum / n or nil
  for _, s in ipairs(sorted_snaps(raw)) do
    local a = { eval_agent_id = s.eval_agent_id, key = s.key, name = s.name, weight = s.weight,
      verdicts = 0, target_hits = 0, scored = 0, failed = 0, insufficient = 0, levels = {},
      level_order = {}, level_labels = {} }
    for i, lv in ipairs(s.levels) do
      a.levels[lv.level_key], a.level_order[i], a.level_labels[lv.level_key] = 0, lv.level_key, lv.label
    end
    local extra, ssum, sn = {}, 0, 0
    for _, r in ipairs(raw.calls) do
      for _, v in ipairs(r.agent_results) do
        if v.eval_run_agent_snapshot_id == s.id then
          a.verdicts = a.verdicts + 1
          if v.failed then a.failed = a.failed + 1 end
          if v.is_insufficient_evidence then a.insufficient = a.insufficient + 1 end
          if not v.failed and not v.is_insufficient_evidence then
            a.scored = a.scored + 1
            if hits(s, v) then a.target_hits = a.target_hits + 1 end
          end
          local sc = val(v.score_normalized_0_100)
          if sc then ssum, sn = ssum + sc, sn + 1 end
          local key = val(v.selected_level_key)
          if key then
            if a.levels[key] == nil then
              extra[#extra + 1] = key
              a.level_labels[key] = val(v.selected_level_label)
              a.levels[key] = 0
            end
            a.levels[key] = a.levels[key] + 1
          end
        end
      end
    end
    -- levels the snapshot does not list: pass, fail, then by name
    local rank = { pass = "1", fail = "2" }
    table.sort(extra, function(x, y) return (rank[x] or "3" .. x) < (rank[y] or "3" .. y) end)
    for _, k in ipairs(extra) do a.level_order[#a.level_order + 1] = k end
    a.target_hit_rate = a.scored > 0 and a.target_hits / a.scored or nil
    a.mean_score = sn > 0 and ssum / sn or nil
    want.agents[#want.agents + 1] = a
  end
  return want
end

local function check_summary(want, got, run_id)
  assert.are.equal(run_id, got.run_id)
  local o = got.overall
  assert.are.equal(want.calls, o.calls, "calls")
  assert.are.same(want.by_status, o.by_status, "by_status")
  assert.are.equal(want.failed_calls, o.failed_calls, "failed_calls")
  assert.are.equal(want.insufficient_calls, o.insufficient_calls, "insufficient_calls")
  near(want.mean_overall_score, o.mean_overall_score, "mean_overall_score")
  assert.are.equal(#want.agents, #got.agents, "number of agents")
  for i, a in ipairs(want.agents) do
    local g, at = got.agents[i], "agent " .. i .. " (" .. a.key .. ")"
    for _, f in ipairs({ "eval_agent_id", "key", "name", "weight", "verdicts", "target_hits",
        "failed", "insufficient" }) do
      assert.are.equal(a[f], g[f], at .. ": " .. f)
    end
    near(a.target_hit_rate, g.target_hit_rate, at .. ": target_hit_rate")
    near(a.mean_score, g.mean_score, at .. ": mean_score")
    assert.are.same(a.levels, g.levels, at .. ": levels")
    assert.are.same(a.level_order, g.level_order, at .. ": level_order")
    assert.are.same(a.level_labels, g.level_labels, at .. ": level_labels")
  end
end

-- Pairs of agents (snapshots, position order) by eval_agent_id, then by key.
local function pair_agents(sa, sb)
  local pairs_, taken_a, taken_b = {}, {}, {}
  for _, round in ipairs({ "eval_agent_id", "key" }) do
    for i, a in ipairs(sa) do
      if not taken_a[i] then
        for j, b in ipairs(sb) do
          if not taken_b[j] and a[round] == b[round] then
            taken_a[i], taken_b[j] = j, true
            break
          end
        end
      end
    end
  end
  for i in ipairs(sa) do pairs_[#pairs_ + 1] = { a = i, b = taken_a[i] or nil } end
  for j in ipairs(sb) do if not taken_b[j] then pairs_[#pairs_ + 1] = { b = j } end end
  return pairs_
end

-- compare(raw_a, raw_b): agents { key, a, b, hit_rate_delta, mean_score_delta, regression },
-- changed as sorted strings "call_id|key|a_level|b_level|a_target|b_target"
local function expected_compare(ra, rb, threshold, score_threshold)
  threshold, score_threshold = threshold or 0.05, score_threshold or 5
  local ea, eb = expected_summary(ra), expected_summary(rb)
  local sa, sb = sorted_snaps(ra), sorted_snaps(rb)
  local want = { agents = {}, changed = {}, regression = false }
  local a_for_b = {}            -- B snapshot id -> A snapshot
  for _, p in ipairs(pair_agents(sa, sb)) do
    local a, b = p.a and ea.agents[p.a], p.b and eb.agents[p.b]
    local e = { key = (a or b).key, a = a, b = b }
    if a and b then
      a_for_b[sb[p.b].id] = sa[p.a]
      if a.target_hit_rate and b.target_hit_rate then e.hit_rate_delta = b.target_hit_rate - a.target_hit_rate end
      if a.mean_score and b.mean_score then e.mean_score_delta = b.mean_score - a.mean_score end
    end
    e.regression = (e.hit_rate_delta or 0) < -threshold - EPS or (e.mean_score_delta or 0) < -score_threshold - EPS
    want.regression = want.regression or e.regression
    want.agents[#want.agents + 1] = e
  end
  local a_calls = {}
  for _, r in ipairs(ra.calls) do a_calls[r.call_id] = r end
  local function level_of(v) return tostring(val(v.selected_level_key)) end
  for _, r in ipairs(rb.calls) do
    local ar = a_calls[r.call_id]
    if ar then
      for _, vb in ipairs(r.agent_results) do
        local s_a = a_for_b[vb.eval_run_agent_snapshot_id]
        local s_b
        for _, s in ipairs(sb) do if s.id == vb.eval_run_agent_snapshot_id then s_b = s end end
        for _, va in ipairs(ar.agent_results) do
          if s_a and va.eval_run_agent_snapshot_id == s_a.id and level_of(va) ~= level_of(vb) then
            local ha = not va.failed and not va.is_insufficient_evidence and hits(s_a, va)
            local hb = not vb.failed and not vb.is_insufficient_evidence and hits(s_b, vb)
            want.changed[#want.changed + 1] = table.concat({ r.call_id, s_a.key, level_of(va),
              level_of(vb), tostring(ha), tostring(hb) }, "|")
          end
        end
      end
    end
  end
  table.sort(want.changed)
  return want
end

local function changed_strings(changed)
  local out = {}
  for i, c in ipairs(changed) do
    out[i] = table.concat({ c.call_id, c.key, tostring(c.a_level), tostring(c.b_level),
      tostring(c.a_target), tostring(c.b_target) }, "|")
  end
  table.sort(out)
  return out
end

local function check_compare(want, got, ra, rb)
  check_summary(expected_summary(ra), got.a, got.a.run_id)
  check_summary(expected_summary(rb), got.b, got.b.run_id)
  assert.are.equal(#want.agents, #got.agents, "paired agents")
  for i, w in ipairs(want.agents) do
    local g, at = got.agents[i], "agent " .. i .. " (" .. w.key .. ")"
    assert.are.equal(w.key, g.key, at .. ": key")
    assert.are.equal(w.a and w.a.eval_agent_id, g.a and g.a.eval_agent_id, at .. ": a")
    assert.are.equal(w.b and w.b.eval_agent_id, g.b and g.b.eval_agent_id, at .. ": b")
    near(w.hit_rate_delta, g.hit_rate_delta, at .. ": hit_rate_delta")
    near(w.mean_score_delta, g.mean_score_delta, at .. ": mean_score_delta")
    assert.are.equal(w.regression, g.regression, at .. ": regression")
  end
  assert.are.same(want.changed, changed_strings(got.changed), "changed calls")
  assert.are.equal(want.regression, got.regression, "regression")
end

---------------------------------------------------------------------------------------------
-- A stub client: hand-made runs, the two methods analysis uses, and a log of its calls.

local function stub_client(runs, page_size)
  page_size = page_size or 2
  local c = { log = {} }
  function c:call_results(run_id, params)
    if type(run_id) ~= "string" or run_id == "" then
      error("bad argument #1 to 'call_results' (run_id must be a non-empty string)", 3)
    end
    self.log[#self.log + 1] = { "call_results", run_id, params }
    local run = assert(runs[run_id], "no stub run " .. run_id)
    local i, page = 0, nil
    local closing = setmetatable({ close = function() end }, { __close = function() end })
    return function()
      i = i + 1
      local r = run.calls[i]
      if r == nil then return nil end
      if (i - 1) % page_size == 0 then page = { number = math.floor((i - 1) / page_size) + 1 } end
      return r, page
    end, closing, nil, closing
  end
  function c:agent_snapshots(run_id)
    self.log[#self.log + 1] = { "agent_snapshots", run_id }
    local run = runs[run_id]
    if run.snapshot_error then error(run.snapshot_error) end
    local i = 0
    return function()
      i = i + 1
      return run.snaps[i]
    end
  end
  return c
end

-- verdict(snapshot id, eval_agent_id, level, score, opts): a hand-made agent result
local function verdict(sid, agent_id, level, score, opts)
  opts = opts or {}
  local v = {
    eval_run_agent_snapshot_id = sid, eval_agent_id = agent_id,
    selected_level_key = level or NULL, selected_level_label = level and level:upper() or NULL,
    score_normalized_0_100 = score or NULL, is_target_match = NULL,
    failed = opts.failed == true, is_insufficient_evidence = opts.insufficient == true,
  }
  if opts.target ~= nil then v.is_target_match = opts.target end
  return v
end

local function call(call_id, results)
  return { call_id = call_id, status = "COMPLETE", failed_agent_count = 0,
    insufficient_evidence_agent_count = 0, overall_score_normalized_0_100 = NULL, agent_results = results }
end

local function levels(...)
  local out = {}
  for i, k in ipairs({ ... }) do out[i] = { level_key = k, label = k:upper(), color = "#" .. i } end
  return out
end

-- Run A: agents y (pass/fail, position 0), x (graded, target "good"), z (graded, only in A).
-- Run B: x keeps its eval_agent_id but not its key, y keeps its key but not its
-- eval_agent_id, w is new, and one verdict names a snapshot B does not list.
local function hand_runs()
  local A = {
    snaps = {
      { id = "sa-x", eval_agent_id = "ag-x", key = "x", name = "X", modality = "text", weight = 50,
        position = 1, levels = levels("good", "ok", "bad"), target_level_keys = { "good" } },
      { id = "sa-y", eval_agent_id = "ag-y1", key = "y", name = "Y", modality = "audio", weight = 50,
        position = 0, levels = {}, target_level_keys = {} },
      { id = "sa-z", eval_agent_id = "ag-z", key = "z", name = "Z", modality = "text", weight = NULL,
        position = 2, levels = levels("hi", "lo"), target_level_keys = { "hi" } },
    },
    calls = {
      call("c1", { verdict("sa-x", "ag-x", "good", 100), verdict("sa-y", "ag-y1", "pass", 100, { target = true }),
        verdict("sa-z", "ag-z", "hi", 100) }),
      call("c2", { verdict("sa-x", "ag-x", "good", 100), verdict("sa-y", "ag-y1", "pass", 100, { target = true }),
        verdict("sa-z", "ag-z", "lo", 0) }),
      call("c3", { verdict("sa-x", "ag-x", "good", 100), verdict("sa-y", "ag-y1", "fail", 0, { target = false }),
        verdict("sa-z", "ag-z", nil, nil, { insufficient = true }) }),
      call("c4", { verdict("sa-x", "ag-x", "bad", 0), verdict("sa-y", "ag-y1", "pass", 100, { target = true }),
        verdict("sa-z", "ag-z", nil, nil, { failed = true }) }),
      call("c5", { verdict("sa-x", "ag-x", "good", 100), verdict("sa-y", "ag-y1", "pass", 100, { target = true }) }),
    },
  }
  A.calls[4].failed_agent_count = 1
  A.calls[3].insufficient_evidence_agent_count = 1
  A.calls[1].overall_score_normalized_0_100 = 100
  A.calls[2].overall_score_normalized_0_100 = 50
  local B = {
    snaps = {
      { id = "sb-x", eval_agent_id = "ag-x", key = "x-renamed", name = "X2", modality = "text", weight = 50,
        position = 0, levels = levels("good", "ok", "bad"), target_level_keys = { "good" } },
      { id = "sb-y", eval_agent_id = "ag-y2", key = "y", name = "Y2", modality = "audio", weight = 50,
        position = 1, levels = {}, target_level_keys = {} },
      { id = "sb-w", eval_agent_id = "ag-w", key = "w", name = "W", modality = "text", weight = 10,
        position = 2, levels = levels("yes", "no"), target_level_keys = { "yes" } },
    },
    calls = {
      call("c1", { verdict("sb-x", "ag-x", "good", 100), verdict("sb-y", "ag-y2", "pass", 100, { target = true }),
        verdict("sb-w", "ag-w", "yes", 100) }),
      call("c2", { verdict("sb-x", "ag-x", "ok", 50), verdict("sb-y", "ag-y2", "pass", 100, { target = true }) }),
      call("c3", { verdict("sb-x", "ag-x", "bad", 0), verdict("sb-y", "ag-y2", "fail", 0, { target = false }) }),
      call("c4", { verdict("sb-x", "ag-x", "bad", 0), verdict("sb-y", "ag-y2", nil, nil, { failed = true }) }),
      call("c6", { verdict("sb-x", "ag-x", "good", 100), verdict("sb-y", "ag-y2", "pass", 100, { target = true }),
        verdict("sb-ghost", "ag-ghost", "maybe", 40, { target = true }) }),
    },
  }
  return { A = A, B = B }
end

describe("blandeval.analysis on hand-made runs", function()
  it("verdicts joins each verdict to its snapshot's agent, level and target", function()
    local c = stub_client(hand_runs())
    local got = {}
    for r, vs, page in analysis.verdicts(c, "A") do
      assert.is_table(page)
      for _, j in ipairs(vs) do
        got[#got + 1] = table.concat({ r.call_id, j.agent.key, j.level and j.level.key or "-",
          j.level and tostring(j.level.label) or "-", j.level and tostring(j.level.color) or "-",
          tostring(j.is_target) }, " ")
      end
    end
    -- y is pass/fail: no target_level_keys, so is_target follows is_target_match
    assert.are.same({
      "c1 x good GOOD #1 true", "c1 y pass PASS nil true", "c1 z hi HI #1 true",
      "c2 x good GOOD #1 true", "c2 y pass PASS nil true", "c2 z lo LO #2 false",
      "c3 x good GOOD #1 true", "c3 y fail FAIL nil false", "c3 z - - - false",
      "c4 x bad BAD #3 false", "c4 y pass PASS nil true", "c4 z - - - false",
      "c5 x good GOOD #1 true", "c5 y pass PASS nil true",
    }, got)
  end)

  it("verdicts: agents carry the snapshot's fields; an unknown snapshot gives { snapshot_id } only", function()
    local c = stub_client(hand_runs())
    local seen
    for r, vs in analysis.verdicts(c, "B") do
      if r.call_id == "c6" then seen = vs end
    end
    assert.are.same({ name = "X2", key = "x-renamed", modality = "text", weight = 50, snapshot_id = "sb-x",
      eval_agent_id = "ag-x" }, seen[1].agent)
    assert.are.same({ snapshot_id = "sb-ghost" }, seen[3].agent)
    assert.are.same({ key = "maybe", label = "MAYBE" }, seen[3].level)
    assert.is_true(seen[3].is_target, "no snapshot: is_target_match decides")
    assert.are.equal(c.log[1][3].include_agent_results, true)
  end)

  it("verdicts fetches the snapshots once, at the first item, and forces include_agent_results", function()
    local c = stub_client(hand_runs())
    local step, state = analysis.verdicts(c, "A", { include_agent_results = false, limit = 3 })
    assert.are.equal(1, #c.log, "call_results only, no snapshots yet")
    assert.are.same({ include_agent_results = true, limit = 3 }, c.log[1][3])
    step(state)
    assert.are.equal("agent_snapshots", c.log[2][1])
    for _ in step, state do end
    assert.are.equal(2, #c.log, "snapshots once")
  end)

  it("summary counts per agent in snapshot position order", function()
    local s = analysis.summary(stub_client(hand_runs()), "A")
    assert.are.same({ calls = 5, by_status = { COMPLETE = 5 }, failed_calls = 1, insufficient_calls = 1,
      scored_calls = 2, mean_overall_score = 75 }, s.overall)
    assert.are.equal(3, #s.agents)
    local y, x, z = s.agents[1], s.agents[2], s.agents[3]
    assert.are.equal("y", y.key)
    assert.are.equal("x", x.key)
    assert.are.equal("z", z.key)
    -- x: good x4 (target), bad x1
    assert.are.equal(5, x.verdicts)
    assert.are.equal(4, x.target_hits)
    near(0.8, x.target_hit_rate, "x rate")
    near(80, x.mean_score, "x mean")
    assert.are.same({ good = 4, ok = 0, bad = 1 }, x.levels)
    assert.are.same({ "good", "ok", "bad" }, x.level_order)
    assert.are.same({ good = "GOOD", ok = "OK", bad = "BAD" }, x.level_labels)
    assert.are.same({ good = "#1", ok = "#2", bad = "#3" }, x.level_colors)
    assert.are.same({ "good" }, x.target_level_keys)
    -- y: pass/fail, no levels in the snapshot; is_target_match decides
    assert.are.equal(4, y.target_hits)
    near(0.8, y.target_hit_rate, "y rate")
    assert.are.same({ pass = 4, fail = 1 }, y.levels)
    assert.are.same({ "pass", "fail" }, y.level_order)
    assert.are.same({ pass = "PASS", fail = "FAIL" }, y.level_labels)
    -- z: one insufficient, one failed: neither counts for the hit rate nor has a score
    assert.are.equal(4, z.verdicts)
    assert.are.equal(1, z.insufficient)
    assert.are.equal(1, z.failed)
    assert.are.equal(1, z.target_hits)
    near(0.5, z.target_hit_rate, "z rate")
    near(50, z.mean_score, "z mean")
    assert.is_nil(z.weight, "a null weight is missing")
    if IS_54 then
      for _, a in ipairs(s.agents) do
        for _, f in ipairs({ "verdicts", "target_hits", "failed", "insufficient" }) do
          assert.are.equal("integer", math.type(a[f]), f)
        end
      end
    end
  end)

  it("summary lists a snapshot it does not know after the others", function()
    local s = analysis.summary(stub_client(hand_runs()), "B")
    assert.are.equal(4, #s.agents)
    local ghost = s.agents[4]
    assert.are.equal("sb-ghost", ghost.snapshot_id)
    assert.are.equal("ag-ghost", ghost.eval_agent_id)
    assert.is_nil(ghost.key)
    assert.are.equal(1, ghost.verdicts)
    near(1, ghost.target_hit_rate, "ghost rate")
    assert.are.same({ maybe = 1 }, ghost.levels)
  end)

  it("compare pairs agents by eval_agent_id, then key, and lists the changed calls", function()
    local cmp = analysis.compare(stub_client(hand_runs()), "A", "B")
    local rows = {}
    for i, a in ipairs(cmp.agents) do
      rows[i] = { key = a.key, a = a.a and a.a.snapshot_id, b = a.b and a.b.snapshot_id,
        regression = a.regression }
    end
    assert.are.same({
      { key = "y", a = "sa-y", b = "sb-y", regression = false },   -- by key
      { key = "x", a = "sa-x", b = "sb-x", regression = true },    -- by eval_agent_id
      { key = "z", a = "sa-z", regression = false },               -- only in A
      { key = "w", b = "sb-w", regression = false },               -- only in B
      { b = "sb-ghost", regression = false },
    }, rows)
    -- x: 4/5 -> 2/5 hits, mean 80 -> 50
    near(-0.4, cmp.agents[2].hit_rate_delta, "x hit delta")
    near(-30, cmp.agents[2].mean_score_delta, "x score delta")
    -- y: 0.8 -> 0.75 and 80 -> 75: drops of exactly 5 points, not more
    near(-0.05, cmp.agents[1].hit_rate_delta, "y hit delta")
    near(-5, cmp.agents[1].mean_score_delta, "y score delta")
    assert.is_nil(cmp.agents[3].hit_rate_delta)
    assert.is_nil(cmp.agents[4].mean_score_delta)
    assert.is_true(cmp.regression)
    assert.are.same({
      { call_id = "c2", key = "x", a_level = "good", b_level = "ok", a_target = true, b_target = false },
      { call_id = "c3", key = "x", a_level = "good", b_level = "bad", a_target = true, b_target = false },
      { call_id = "c4", key = "y", a_level = "pass", a_target = true, b_target = false },
    }, cmp.changed)
    assert.are.equal("A", cmp.a.run_id)
    assert.are.equal("B", cmp.b.run_id)
  end)

  it("compare thresholds: a drop must be more than the threshold", function()
    local runs = hand_runs()
    local function flagged(opts)
      local out = {}
      for _, a in ipairs(analysis.compare(stub_client(runs), "A", "B", opts).agents) do
        if a.regression then out[#out + 1] = a.key end
      end
      return out
    end
    assert.are.same({ "x" }, flagged(nil))
    assert.are.same({ "y", "x" }, flagged({ threshold = 0.04 }))
    assert.are.same({ "y", "x" }, flagged({ score_threshold = 4.9 }))
    assert.are.same({ "x" }, flagged({ threshold = 0.39, score_threshold = 29 }))
    assert.are.same({}, flagged({ threshold = 0.4, score_threshold = 30 }))
  end)

  it("compare of a run with itself: no regression, no changed calls", function()
    local cmp = analysis.compare(stub_client(hand_runs()), "A", "A")
    assert.is_false(cmp.regression)
    assert.are.same({}, cmp.changed)
    for _, a in ipairs(cmp.agents) do
      assert.are.equal(a.a.snapshot_id, a.b.snapshot_id)
      near(0, a.hit_rate_delta, a.key)
    end
  end)

  it("errors of the client's iterators propagate unchanged", function()
    local runs = hand_runs()
    local boom = { kind = "network", message = "snapshots failed" }
    runs.A.snapshot_error = boom
    local ok, err = pcall(analysis.summary, stub_client(runs), "A")
    assert.is_false(ok)
    assert.are.equal(boom, err)
    ok, err = pcall(function() for _ in analysis.verdicts(stub_client(runs), "A") do end end)
    assert.are.equal(boom, err)
  end)

  it("progress sees every page", function()
    local pages = {}
    analysis.summary(stub_client(hand_runs(), 2), "A", { progress = function(p, run) pages[#pages + 1] = run .. p.number end })
    assert.are.same({ "A1", "A2", "A3" }, pages)
  end)
end)

---------------------------------------------------------------------------------------------

describe("blandeval.analysis against the fake API", function()
  local api

  setup(function() api = fakeapi.start() end)
  teardown(function() if api then api.stop() end end)

  local function client(opts) return transport.client(api, opts) end
  local function requests(run_id, what)
    local n, paths = 0, {}
    for _, p in ipairs(api.stats(run_id).paths) do
      if p:find("/" .. what, 1, true) then n, paths[#paths + 1] = n + 1, p end
    end
    return n, paths
  end

  describe("verdicts", function()
    it("joins every agent result of run-60 to its snapshot", function()
      local c = client()
      local raw = fetch_raw(c, "run-60")
      local by_id = {}
      for _, s in ipairs(raw.snaps) do by_id[s.id] = s end
      local i, n = 0, 0
      for r, vs, page in analysis.verdicts(c, "run-60") do
        i = i + 1
        assert.are.equal(raw.calls[i].id, r.id)
        assert.is_table(page)
        assert.are.equal(#raw.calls[i].agent_results, #vs)
        for k, j in ipairs(vs) do
          local v = raw.calls[i].agent_results[k]
          assert.are.equal(v.id, j.verdict.id)
          local s = by_id[v.eval_run_agent_snapshot_id]
          assert.are.same({ name = s.name, key = s.key, modality = s.modality, weight = s.weight,
            snapshot_id = s.id, eval_agent_id = s.eval_agent_id }, j.agent)
          local want_level
          for _, lv in ipairs(s.levels) do
            if lv.level_key == v.selected_level_key then
              want_level = { key = lv.level_key, label = lv.label, color = lv.color }
            end
          end
          if not want_level and v.selected_level_key then
            want_level = { key = v.selected_level_key, label = v.selected_level_label }
          end
          assert.are.same(want_level, j.level)
          assert.are.equal(hits(s, v), j.is_target)
          -- the fake's own flag agrees with the snapshot's targets
          if not v.failed and not v.is_insufficient_evidence then
            assert.are.equal(v.is_target_match, j.is_target)
          end
          n = n + 1
        end
      end
      assert.are.equal(60, i)
      assert.is_true(n > 100, "run-60 has verdicts")
    end)

    it("fetches the snapshots once, lazily, and always asks for agent results", function()
      local c = client({ page_size = 100, prefetch = false })
      api.reset()
      local step, state = analysis.verdicts(c, "run-250", { include_agent_results = false })
      assert.are.equal(0, api.stats("run-250").requests, "nothing before the first item")
      local r, vs = step(state)
      assert.is_table(r)
      assert.is_table(vs)
      assert.are.equal(1, (requests("run-250", "agent-snapshots")))
      assert.are.equal(1, (requests("run-250", "call-results")))
      local n = 1
      for _ in step, state do n = n + 1 end
      assert.are.equal(250, n)
      assert.are.equal(1, (requests("run-250", "agent-snapshots")), "once per iteration")
      local count, paths = requests("run-250", "call-results")
      assert.are.equal(3, count)
      for _, p in ipairs(paths) do assert.matches("include_agent_results=true", p, 1, true) end
    end)

    it("passes the other parameters through", function()
      local c = client()
      api.reset()
      local n = 0
      for _ in analysis.verdicts(c, "run-20", { limit = 7 }) do n = n + 1 end
      assert.are.equal(20, n)
      local count, paths = requests("run-20", "call-results")
      assert.are.equal(3, count)
      assert.matches("limit=7", paths[1], 1, true)
    end)

    it("on Lua 5.4, leaving the loop closes the client's iterator", function()
      if not IS_54 then return end
      local c = client({ page_size = 10 })
      local step, state, ctl, closing = analysis.verdicts(c, "run-60")
      for _ in step, state, ctl, closing do break end
      local ok, err = pcall(step, state)
      assert.is_false(ok)
      assert.matches("closed", tostring(err))
    end)

    it("raises the client's error values unchanged", function()
      local c = client({ max_retries = 0, page_size = 25 })
      local ok, err = pcall(function() for _ in analysis.verdicts(c, "no-such-run") do end end)
      assert.is_false(ok)
      assert.are.equal("api", err.kind)
      assert.are.equal("EVAL_RUN_NOT_FOUND", err.code)
      local seen = 0
      ok, err = pcall(function() for _ in analysis.verdicts(c, "fault-500-forever@a1") do seen = seen + 1 end end)
      assert.is_false(ok)
      assert.are.equal(25, seen, "the first page, then the failure")
      assert.are.equal(500, err.status)
      assert.is_string(err.starting_after)
    end)

    it("wrong arguments raise errors naming verdicts and blaming the caller", function()
      local c = client()
      local ok, err = pcall(function() analysis.verdicts(c, "") end)
      assert.is_false(ok)
      assert.matches("analysis_spec.lua:%d+: bad argument #1 to 'verdicts' %(run_id must be a non%-empty string, got \"\"%)$", err)
      ok, err = pcall(function() analysis.verdicts(c, "run-3", { limit = 0 }) end)
      assert.matches("analysis_spec.lua:%d+: bad argument #2 to 'verdicts' %(limit must be", err)
      ok, err = pcall(function() analysis.verdicts(c, "run-3", { bogus = 1 }) end)
      assert.matches("analysis_spec.lua:%d+: bad argument #2 to 'verdicts' %(unknown parameter 'bogus'%)", err)
      ok, err = pcall(function() analysis.verdicts(c, "run-3", 5) end)
      assert.matches("analysis_spec.lua:%d+: bad argument #2 to 'verdicts' %(params must be a table, got number%)", err)
      ok, err = pcall(function() analysis.summary(c, "..") end)
      assert.matches("analysis_spec.lua:%d+: bad argument #1 to 'summary'", err)
      ok, err = pcall(function() analysis.summary(c, "run-3", { bogus = true }) end)
      assert.matches("bad argument #2 to 'summary' %(unknown option 'bogus'%)", err)
      ok, err = pcall(function() analysis.compare(c, "run-3") end)
      assert.matches("analysis_spec.lua:%d+: bad argument #2 to 'compare'", err)
      ok, err = pcall(function() analysis.compare(c, "run-3", "run-3", { threshold = -1 }) end)
      assert.matches("bad argument #3 to 'compare' %(option 'threshold' must be a number >= 0%)", err)
      assert.are.equal(0, api.stats("run-3").requests, "no request for a wrong call")
    end)
  end)

  describe("summary", function()
    for _, run_id in ipairs({ "run-0", "run-1", "run-60", "run-250" }) do
      it("of " .. run_id .. " matches the counts of its raw items", function()
        local c = client({ page_size = 100 })
        local want = expected_summary(fetch_raw(c, run_id))
        local got = analysis.summary(c, run_id)
        check_summary(want, got, run_id)
        if run_id ~= "run-0" then
          assert.is_true(got.overall.failed_calls > 0 or run_id == "run-1")
        else
          assert.are.equal(3, #got.agents, "the agents of a run without calls")
          assert.is_nil(got.overall.mean_overall_score)
          assert.is_nil(got.agents[1].target_hit_rate)
        end
      end)
    end

    it("is the same with keep_nulls = true, with integer counts on Lua 5.4", function()
      local plain = analysis.summary(client({ page_size = 100 }), "run-250")
      local nulls = analysis.summary(client({ page_size = 100, keep_nulls = true }), "run-250")
      assert.are.same(plain, nulls)
      check_summary(expected_summary(fetch_raw(client({ keep_nulls = true }), "run-250")), nulls, "run-250")
      if IS_54 then
        assert.is_true(is_integer(nulls.overall.calls))
        assert.is_true(is_integer(nulls.overall.failed_calls))
        for _, n in pairs(nulls.overall.by_status) do assert.is_true(is_integer(n)) end
        for _, a in ipairs(nulls.agents) do
          assert.is_true(is_integer(a.verdicts) and is_integer(a.target_hits) and is_integer(a.failed))
          for _, n in pairs(a.levels) do assert.is_true(is_integer(n)) end
        end
      end
    end)

    it("calls progress once per page and fetches the snapshots once", function()
      local c = client({ page_size = 100 })
      api.reset()
      local numbers = {}
      analysis.summary(c, "run-250", { progress = function(page, run_id)
        numbers[#numbers + 1] = page.number
        assert.are.equal("run-250", run_id)
      end })
      assert.are.same({ 1, 2, 3 }, numbers)
      assert.are.equal(3, (requests("run-250", "call-results")))
      assert.are.equal(1, (requests("run-250", "agent-snapshots")))
    end)

    it("keeps no page: a page is garbage once the next one is read", function()
      local c = client({ page_size = 50 })
      local weak = setmetatable({}, { __mode = "k" })
      local alive_at = {}
      analysis.summary(c, "run-500", { progress = function(page)
        weak[page] = page.number
        collectgarbage()
        collectgarbage()
        local alive = 0
        for p, number in pairs(weak) do
          if number < page.number - 1 then alive = alive + 1 end
        end
        alive_at[#alive_at + 1] = alive
      end })
      assert.are.equal(10, #alive_at)
      for i, alive in ipairs(alive_at) do
        assert.are.equal(0, alive, "pages older than the previous one still alive at page " .. i)
      end
    end)

    it("raises the client's error values unchanged", function()
      local c = client({ max_retries = 0 })
      local ok, err = pcall(analysis.summary, c, "no-such-run")
      assert.is_false(ok)
      assert.are.equal("EVAL_RUN_NOT_FOUND", err.code)
    end)
  end)

  describe("compare", function()
    it("run-60 with itself: no regression, no changed calls, zero deltas", function()
      local c = client({ page_size = 25 })
      local raw = fetch_raw(c, "run-60")
      local cmp = analysis.compare(c, "run-60", "run-60")
      check_compare(expected_compare(raw, raw), cmp, raw, raw)
      assert.is_false(cmp.regression)
      assert.are.same({}, cmp.changed)
      assert.are.equal(3, #cmp.agents)
      for _, a in ipairs(cmp.agents) do
        assert.are.equal(a.a.eval_agent_id, a.b.eval_agent_id)
        assert.are.equal(0, a.hit_rate_delta)
        assert.are.equal(0, a.mean_score_delta)
      end
    end)

    it("two unrelated runs: agents paired by key (two of three), no calls in common", function()
      local c = client()
      local ra, rb = fetch_raw(c, "run-40"), fetch_raw(c, "run-42")
      local cmp = analysis.compare(c, "run-40", "run-42")
      local want = expected_compare(ra, rb)
      check_compare(want, cmp, ra, rb)
      assert.are.same({}, cmp.changed)
      local paired = 0
      for _, a in ipairs(cmp.agents) do if a.a and a.b then paired = paired + 1 end end
      assert.are.equal(2, paired, "run-40 and run-42 share two agent keys")
      assert.are.equal(4, #cmp.agents, "and have one agent each of their own")
    end)

    it("reads both runs at once", function()
      local c = client({ page_size = 10 })
      api.reset()
      local cmp = analysis.compare(c, "slow150-20", "slow150-20")
      assert.is_false(cmp.regression)
      assert.are.equal(0, #cmp.changed)
      local st = api.stats("slow150-20")
      assert.are.equal(4, st.requests - 2, "two pages of each, and the snapshots of each")
      assert.are.equal(2, st.max_in_flight, "A's and B's pages were asked for together")
    end)

    it("thresholds and progress over both runs", function()
      local c = client({ page_size = 25 })
      local ra, rb = fetch_raw(c, "run-40"), fetch_raw(c, "run-42")
      local runs = {}
      local cmp = analysis.compare(c, "run-40", "run-42", { threshold = 0, score_threshold = 0,
        progress = function(page, run_id) runs[#runs + 1] = run_id .. "#" .. page.number end })
      check_compare(expected_compare(ra, rb, 0, 0), cmp, ra, rb)
      -- the runs are read together: each run's pages in order, the two interleaved
      local per = { ["run-40"] = {}, ["run-42"] = {} }
      for _, r in ipairs(runs) do
        local id, n = r:match("^(.-)#(%d+)$")
        table.insert(per[id], tonumber(n))
      end
      assert.are.same({ 1, 2 }, per["run-40"])
      assert.are.same({ 1, 2 }, per["run-42"])
    end)

    -- cmp-b-N re-runs cmp-a-N's calls; its position-0 agent loses the target match on the
    -- calls whose 1-based index is a multiple of 3 (spec/support/pagegen.lua, regressed())
    for _, n in ipairs({ 60, 250 }) do
      it("cmp-a-" .. n .. " and cmp-b-" .. n .. ": the worse agent regresses, its changed calls listed", function()
        local c = client({ page_size = 100 })
        local a_id, b_id = "cmp-a-" .. n, "cmp-b-" .. n
        local page, err = c:call_results_page(a_id, { limit = 1 })
        if not page and err.code == "EVAL_RUN_NOT_FOUND" then
          pending("the fake API has no " .. a_id .. " run yet")
          return
        end
        local ra, rb = fetch_raw(c, a_id), fetch_raw(c, b_id)
        assert.are.equal(n, #ra.calls)
        assert.are.equal(n, #rb.calls)
        local want = expected_compare(ra, rb)
        local cmp = analysis.compare(c, a_id, b_id)
        check_compare(want, cmp, ra, rb)

        -- what the fake's rule implies, independently of expected_compare
        local first = sorted_snaps(ra)[1]
        local want_changed = {}
        for i, r in ipairs(ra.calls) do
          assert.are.equal(r.call_id, rb.calls[i].call_id, "the same calls")
          if i % 3 == 0 then
            for _, v in ipairs(r.agent_results) do
              if v.eval_run_agent_snapshot_id == first.id and v.is_target_match == true then
                want_changed[#want_changed + 1] = r.call_id
              end
            end
          end
        end
        assert.is_true(#want_changed > 0)
        local got_changed = {}
        for i, ch in ipairs(cmp.changed) do
          got_changed[i] = ch.call_id
          assert.are.equal(first.key, ch.key)
          assert.is_true(ch.a_target)
          assert.is_false(ch.b_target)
          assert.is_string(ch.b_level)
        end
        assert.are.same(want_changed, got_changed)
        assert.is_true(cmp.regression)
        for k, a in ipairs(cmp.agents) do
          assert.are.equal(a.a.eval_agent_id, a.b.eval_agent_id, "paired by eval_agent_id")
          assert.are_not.equal(a.a.snapshot_id, a.b.snapshot_id, "each run has its own snapshots")
          assert.are.equal(k == 1, a.regression, a.key)
          if k == 1 then
            assert.is_true(a.hit_rate_delta < -0.05)
          else
            assert.are.equal(0, a.hit_rate_delta)
            assert.are.equal(0, a.mean_score_delta)
          end
        end

        -- the other way round nothing got worse
        local back = analysis.compare(c, b_id, a_id)
        check_compare(expected_compare(rb, ra), back, rb, ra)
        assert.is_false(back.regression)
        assert.are.equal(#cmp.changed, #back.changed)
      end)
    end
  end)
end)
