-- Specs for spec/support/pagegen.lua, the generator of Bland Evals list pages used as decoder
-- input. Uses lua-cjson as an independent decoder; does not need blandeval.core.

local pagegen = require "pagegen"
local cjson = require "cjson"

local NULL = cjson.null
local F = pagegen.fields

-- Deep compare: cjson's output against pagegen's table built with null = cjson.null. Numbers
-- compare by value (Debian's cjson returns floats for integers on 5.4). Returns ok, path.
local function deq(a, b, path)
  path = path or "$"
  if type(a) == "number" and type(b) == "number" then return a == b, path end
  if type(a) ~= "table" or type(b) ~= "table" then return a == b, path end
  for k, v in pairs(a) do
    local ok, p = deq(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, p end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. " (missing)" end
  end
  return true
end

local function assert_same(a, b)
  local ok, where = deq(a, b)
  assert(ok, "tables differ at " .. tostring(where))
end

local function count_plain(text, s)   -- occurrences of a plain substring
  local n, i = 0, 1
  while true do
    local j = text:find(s, i, true)
    if not j then return n end
    n, i = n + 1, j + 1
  end
end

-- Each listed key appears in `text` after the previous one, starting at `from`.
local function assert_key_order(text, keys, from)
  local pos = from or 1
  for _, k in ipairs(keys) do
    local at = text:find('"' .. k .. '":', pos, true)
    assert(at, "key " .. k .. " missing or out of order")
    pos = at + 1
  end
end

local function items_of(v) return v.data.data end

local BIG = { seed = 7, count = 100, include_agent_results = true, null = NULL }

describe("pagegen", function()
  local big_text, big

  setup(function()
    big_text, big = pagegen.call_results_page(BIG)
  end)

  describe("PRNG", function()
    it("gives the pinned sequence for seed 1 (the same numbers on Lua 5.4 and LuaJIT)", function()
      local r = pagegen.rng(1)
      assert.same({ 1370087283, 1576844681, 459212283 }, { r:next(), r:next(), r:next() })
    end)

    it("stays in range and produces Lua integers on 5.4", function()
      local r = pagegen.rng(123456789)
      for _ = 1, 1000 do
        local x = r:next()
        assert.is_true(x >= 1 and x <= 2147483646 and x == math.floor(x))
        if math.type then assert.equal("integer", math.type(x)) end
        local y = r:int(-3, 3)
        assert.is_true(y >= -3 and y <= 3)
      end
    end)

    it("normalizes odd seeds (float, negative, huge) to the same kind of stream", function()
      assert.equal(pagegen.rng(5):next(), pagegen.rng(5.0):next())
      assert.are_not.equal(pagegen.rng(5):next(), pagegen.rng(6):next())
      for _, s in ipairs({ -1, 0, 2^40 }) do
        local x = pagegen.rng(s):next()
        assert.is_true(x >= 1 and x <= 2147483646)
        if math.type then assert.equal("integer", math.type(x)) end
      end
    end)
  end)

  describe("call_results_page", function()
    it("is deterministic per seed", function()
      local a = pagegen.call_results_page({ seed = 3, count = 10, include_agent_results = true })
      local b = pagegen.call_results_page({ seed = 3, count = 10, include_agent_results = true })
      local c = pagegen.call_results_page({ seed = 4, count = 10, include_agent_results = true })
      assert.equal("string", type(a))
      assert.equal(a, b)
      assert.are_not.equal(a, c)
    end)

    it("decodes with cjson to exactly the returned table (compact and pretty)", function()
      assert_same(cjson.decode(big_text), big)
      local pt, pv = pagegen.call_results_page({ seed = 7, count = 20, include_agent_results = true,
                                                 null = NULL, pretty = true })
      assert.truthy(pt:find("\n        \"agent_results\": [\n", 1, true))
      assert_same(cjson.decode(pt), pv)
    end)

    it("has the seed page's envelope", function()
      local _, v = pagegen.call_results_page({ seed = 1, count = 1, null = NULL })
      assert.equal("list", v.data.object)
      assert.equal(false, v.data.has_more)
      assert.equal(NULL, v.data.next_cursor)
      assert.equal(NULL, v.errors)
      assert.equal("string", type(v.run_status))
      assert.equal(1, v.run_resolved_call_count)
      assert_key_order(pagegen.call_results_page({ seed = 1, count = 1 }),
        { "data", "object", "data", "has_more", "next_cursor", "errors", "run_status",
          "run_resolved_call_count" })
    end)

    it("puts every documented field in every item, in the documented order", function()
      assert.equal(100, #items_of(big))
      local n_results = 0
      for _, item in ipairs(items_of(big)) do
        for _, k in ipairs(F.call_result) do assert(item[k] ~= nil, "call result lacks " .. k) end
        for _, ar in ipairs(item.agent_results) do
          n_results = n_results + 1
          for _, k in ipairs(F.agent_result) do assert(ar[k] ~= nil, "agent result lacks " .. k) end
          for _, k in ipairs(F.audit) do assert(ar.audit[k] ~= nil, "audit lacks " .. k) end
          for _, ev in ipairs(ar.evidence) do
            for _, k in ipairs(F.evidence) do assert(ev[k] ~= nil, "evidence lacks " .. k) end
          end
        end
      end
      assert.is_true(n_results > 200)
      assert.equal(22, #F.agent_result)
      -- order: item fields on a page without inline results, then one agent result
      local plain_text = pagegen.call_results_page({ seed = 7, count = 1 })
      assert_key_order(plain_text, F.call_result, plain_text:find('"id"', 1, true))
      local at = big_text:find('"agent_results":[{', 1, true)
      assert_key_order(big_text, F.agent_result, at + 1)
      assert_key_order(big_text, F.evidence, big_text:find('"evidence":[{', 1, true))
      assert_key_order(big_text, F.audit, big_text:find('"audit":{', 1, true))
    end)

    it("keeps counts, statuses, nulls and links consistent", function()
      local run_id = big.data.data[1].eval_run_id
      local seen = {}
      for _, item in ipairs(items_of(big)) do
        local st = item.status
        seen[st] = true
        local failed, insuff, verdicts = 0, 0, 0
        for _, ar in ipairs(item.agent_results) do
          assert.equal(item.id, ar.eval_run_call_result_id)
          assert.equal(item.call_id, ar.call_id)
          assert.equal(run_id, ar.eval_run_id)
          assert.equal(item.org_id, ar.org_id)
          assert.is_false(ar.failed and ar.is_insufficient_evidence)
          if ar.failed then
            failed = failed + 1
            assert.equal("string", type(ar.failure_code))
            assert.equal("string", type(ar.failure_message))
            assert.equal(NULL, ar.selected_level_key)
            assert.equal(NULL, ar.score_normalized_0_100)
            assert.equal(NULL, ar.is_target_match)
            assert.equal(NULL, ar.audit.output_tokens)
            assert.equal(0, #ar.evidence)
          else
            assert.equal(NULL, ar.failure_code)
            assert.equal(NULL, ar.failure_message)
            assert.equal("number", type(ar.confidence))
            if ar.is_insufficient_evidence then
              insuff = insuff + 1
              assert.equal(NULL, ar.selected_level_key)
              assert.equal(NULL, ar.is_target_match)
            else
              verdicts = verdicts + 1
              assert.equal("string", type(ar.selected_level_key))
              assert.equal("boolean", type(ar.is_target_match))
              local s = ar.score_normalized_0_100
              assert.is_true(s >= 0 and s <= 100)
              assert.is_true(ar.confidence > 0 and ar.confidence <= 1)
              assert.is_true(#ar.evidence >= 1)
            end
          end
        end
        assert.equal(failed, item.failed_agent_count)
        assert.equal(insuff, item.insufficient_evidence_agent_count)
        if st == "PENDING" or st == "QUEUED" then
          assert.equal(0, #item.agent_results)
          assert.equal(NULL, item.started_at)
        end
        if st == "COMPLETE" then
          assert.equal(3, #item.agent_results)
          assert.is_true(verdicts >= 1)
          assert.equal("number", type(item.overall_score_normalized_0_100))
          assert.equal("string", type(item.completed_at))
        else
          assert.equal(NULL, item.overall_score_normalized_0_100)
        end
        if st == "FAILED" then assert.equal(3, failed) end
        if st == "INSUFFICIENT_EVIDENCE" then assert.equal(3, insuff) end
        if st == "RUNNING" then assert.equal(NULL, item.completed_at) end
        for _, k in ipairs({ "created_at", "call_started_at", "started_at", "completed_at" }) do
          local ts = item[k]
          assert(ts == NULL or ts:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"), k .. " " .. tostring(ts))
        end
        assert.truthy(item.id:match("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$"))
      end
      for _, st in ipairs({ "COMPLETE", "FAILED", "INSUFFICIENT_EVIDENCE", "PENDING", "RUNNING" }) do
        assert(seen[st], "status " .. st .. " never generated in 100 items")
      end
    end)

    it("links agent results to the snapshots of the same seed", function()
      local _, snaps = pagegen.agent_snapshots_page({ seed = 7, count = 3 })
      local ids = {}
      for _, s in ipairs(items_of(snaps)) do ids[s.id] = s end
      for _, item in ipairs(items_of(big)) do
        for i, ar in ipairs(item.agent_results) do
          local s = ids[ar.eval_run_agent_snapshot_id]
          assert.truthy(s)
          assert.equal(i - 1, s.position)
          assert.equal(s.eval_agent_id, ar.eval_agent_id)
          assert.equal(s.prompt_version, ar.audit.prompt_version)
          if ar.selected_level_key ~= NULL and #s.levels == 0 then
            assert.truthy(ar.selected_level_key == "pass" or ar.selected_level_key == "fail")
          end
        end
      end
    end)

    it("writes fractions as fraction literals and integers as integers", function()
      local float_keys = { "call_duration_seconds", "overall_score_normalized_0_100",
        "text_score_normalized_0_100", "audio_score_normalized_0_100", "score_normalized_0_100",
        "confidence", "billable_cost_usd" }
      local n = 0
      for _, k in ipairs(float_keys) do
        for lit in big_text:gmatch('"' .. k .. '":([^,}%]]+)') do
          if lit ~= "null" then
            n = n + 1
            assert(lit:find("[.eE]"), k .. " written as " .. lit)
          end
        end
      end
      assert.is_true(n > 500)
      assert.truthy(big_text:find('_0_100":100.0', 1, true))
      local int_keys = { "failed_agent_count", "insufficient_evidence_agent_count", "start_ms",
        "end_ms", "input_tokens", "output_tokens", "latency_ms", "run_resolved_call_count" }
      for _, k in ipairs(int_keys) do
        for lit in big_text:gmatch('"' .. k .. '":([^,}%]]+)') do
          assert(lit == "null" or lit:match("^%d+$"), k .. " written as " .. lit)
        end
      end
      if math.type then   -- Lua 5.4: the table has the matching number subtypes
        for _, item in ipairs(items_of(big)) do
          assert.equal("integer", math.type(item.failed_agent_count))
          if item.call_duration_seconds ~= NULL then
            assert.equal("float", math.type(item.call_duration_seconds))
          end
          for _, ar in ipairs(item.agent_results) do
            if ar.confidence ~= NULL then assert.equal("float", math.type(ar.confidence)) end
            if ar.audit.latency_ms ~= NULL then assert.equal("integer", math.type(ar.audit.latency_ms)) end
          end
        end
      end
    end)

    it("exercises escapes, raw UTF-8 and surrogate pairs in a 100-item page", function()
      local t = big_text
      for _, s in ipairs({ "\\ud83d", "\\ude00", "\\uD83D", "\\u00e9", "\\u00E9", "\\u0027",
                           "\\n", "\\t", '\\"', "\\\\", "\\/", "é", "ü", "ñ", "😀", "東京" }) do
        assert(count_plain(t, s) > 0, "text never contains " .. s)
      end
      -- decoded side: strings hold UTF-8, including characters that were escaped in the text
      local found = {}
      local longest = 0
      local function walk(v)
        if type(v) == "string" then
          for _, c in ipairs({ "😀", "é", "\n", "\t", '"', "\\", "/" }) do
            if v:find(c, 1, true) then found[c] = true end
          end
          assert.is_nil(v:find("\\u", 1, true))
        elseif type(v) == "table" then
          for _, x in pairs(v) do walk(x) end
        end
      end
      walk(big)
      for _, c in ipairs({ "😀", "é", "\n", "\t", '"', "\\", "/" }) do assert(found[c], c) end
      for _, item in ipairs(items_of(big)) do
        for _, ar in ipairs(item.agent_results) do
          if ar.reasoning_md ~= NULL and #ar.reasoning_md > longest then longest = #ar.reasoning_md end
        end
      end
      assert.is_true(longest >= 300)
      -- nullable fields do come out null sometimes
      local nulls = {}
      for _, item in ipairs(items_of(big)) do
        if item.audio_score_normalized_0_100 == NULL then nulls.audio = true end
        if item.call_display_name == NULL then nulls.display = true end
        for _, ar in ipairs(item.agent_results) do
          for _, ev in ipairs(ar.evidence) do
            if ev.speaker == NULL then nulls.speaker = true end
            if ev.start_ms == NULL then nulls.start_ms = true end
          end
        end
      end
      assert.same({ audio = true, display = true, speaker = true, start_ms = true }, nulls)
    end)

    it("gives empty agent_results without include_agent_results, all else unchanged", function()
      local _, without = pagegen.call_results_page({ seed = 7, count = 100, null = NULL })
      for i, item in ipairs(items_of(without)) do
        assert.same({}, item.agent_results)
        big.data.data[i].agent_results, item.agent_results = nil, nil
      end
      local _, with = pagegen.call_results_page(BIG)
      for _, item in ipairs(items_of(with)) do item.agent_results = nil end
      assert_same(with, without)
      assert.truthy(pagegen.call_results_page({ seed = 7, count = 3 }):find('"agent_results":[]', 1, true))
      big_text, big = pagegen.call_results_page(BIG)  -- restore for later tests
    end)

    it("makes pages slices of one run (after_index)", function()
      local _, all = pagegen.call_results_page({ seed = 9, count = 50, include_agent_results = true })
      local _, p2 = pagegen.call_results_page({ seed = 9, count = 25, after_index = 25,
                                               include_agent_results = true })
      for k = 1, 25 do assert.same(all.data.data[25 + k], p2.data.data[k]) end
    end)

    it("honours has_more, next_cursor, run_id, run_status, resolved and null", function()
      local _, v = pagegen.call_results_page({ seed = 2, count = 5, has_more = true })
      assert.is_true(v.data.has_more)
      assert.equal(v.data.data[5].id, v.data.next_cursor)
      assert.equal(10, v.run_resolved_call_count)
      local _, w = pagegen.call_results_page({ seed = 2, count = 5, has_more = true, next_cursor = "abc",
        run_id = "run-1", run_status = "PARTIAL", resolved = 4242 })
      assert.equal("abc", w.data.next_cursor)
      assert.equal("run-1", w.data.data[1].eval_run_id)
      assert.equal("PARTIAL", w.run_status)
      assert.equal(4242, w.run_resolved_call_count)
      local _, d = pagegen.call_results_page({ seed = 2, count = 1 })
      assert.equal(pagegen.null, d.errors)
      local _, e = pagegen.call_results_page({ seed = 2, count = 0 })
      assert.same({}, e.data.data)
    end)
  end)

  describe("agent_snapshots_page", function()
    local text, v

    setup(function()
      text, v = pagegen.agent_snapshots_page({ seed = 11, count = 20, null = NULL })
    end)

    it("is deterministic and decodes to the returned table", function()
      assert.equal(text, (pagegen.agent_snapshots_page({ seed = 11, count = 20 })))
      assert.are_not.equal(text, (pagegen.agent_snapshots_page({ seed = 12, count = 20 })))
      assert_same(cjson.decode(text), v)
      assert.equal(false, v.data.has_more)
      assert.equal(NULL, v.data.next_cursor)
      assert.equal(NULL, v.errors)
      assert.is_nil(v.run_status)
    end)

    it("has every field, graded agents with 2-5 levels and pass/fail agents with none", function()
      local graded, passfail, hex, named, keys = 0, 0, 0, 0, {}
      for i, s in ipairs(items_of(v)) do
        for _, k in ipairs(F.snapshot) do assert(s[k] ~= nil, "snapshot lacks " .. k) end
        assert.equal(i - 1, s.position)
        assert.is_nil(keys[s.key]); keys[s.key] = true
        assert.truthy(s.modality == "text" or s.modality == "audio")
        assert.is_true(s.weight >= 0 and s.weight <= 100)
        if #s.levels == 0 then
          passfail = passfail + 1
          assert.same({}, s.target_level_keys)
        else
          graded = graded + 1
          assert.is_true(#s.levels >= 2 and #s.levels <= 5)
          local lk = {}
          for _, l in ipairs(s.levels) do
            for _, k in ipairs({ "level_key", "label", "prompt_md" }) do assert.equal("string", type(l[k])) end
            lk[l.level_key] = true
            if l.color then
              if l.color:match("^#%x%x%x%x%x%x$") then hex = hex + 1 else named = named + 1 end
            end
          end
          assert.is_true(#s.target_level_keys >= 1)
          for _, t in ipairs(s.target_level_keys) do assert.truthy(lk[t]) end
        end
      end
      assert.is_true(graded > 0 and passfail > 0 and hex > 0 and named > 0)
      assert_key_order(text, F.snapshot, text:find('"id"', 1, true))
      assert_key_order(text, { "level_key", "label", "prompt_md" }, text:find('"levels":[{', 1, true))
    end)
  end)

  describe("encode", function()
    it("writes numbers so that they read back exactly", function()
      assert.equal("[0.1,-0.0,1e+300,2.5]", pagegen.encode({ 0.1, -0.0, 1e300, 2.5 }))
      -- plain tables: 5.4 keeps the subtype; LuaJIT cannot tell 88.0 from 88
      assert.equal(math.type and "[88,88.0]" or "[88,88]", pagegen.encode({ 88, 88.0 }))
      for _, x in ipairs({ 1 / 3, 0.1 + 0.2, 187.4, 2^-1074, 1.7976931348623157e308 }) do
        assert.equal(x, tonumber(pagegen.encode(x)))
      end
      assert.has_error(function() pagegen.encode(0 / 0) end)
    end)

    it("writes tables, nulls and strings", function()
      -- an empty table is ambiguous; it is written as []
      assert.equal('{"a":[1,2,null],"b":[],"c":"d"}', pagegen.encode({ c = "d", b = {}, a = { 1, 2, NULL } }, NULL))
      assert.equal("null", pagegen.encode(pagegen.null))
      assert.equal('"a\\"b\\\\c\\n\\t\\u0001/é😀"', pagegen.encode('a"b\\c\n\t\1/é😀'))
      assert.equal('{"1":"x","k":true}', pagegen.encode({ [1] = "x", k = true }))
      local s = 'x"\\/\n é 😀 東京'
      assert.equal(s, cjson.decode(pagegen.encode({ s }))[1])
    end)
  end)

  describe("cross-interpreter determinism", function()
    it("gives byte-identical output on every installed interpreter", function()
      local file = package.searchpath("pagegen", package.path)
      local dir = file:match("^(.*)[/\\]") or "."
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(("package.path = %q .. package.path\n"):format(dir .. "/?.lua;"), [[
        local p = require "pagegen"
        local r = p.rng(1)
        io.write(r:next(), " ", r:next(), " ", r:next(), "\n")
        io.write((p.call_results_page{ seed = 7, count = 100, include_agent_results = true }))
        io.write((p.call_results_page{ seed = 8, count = 10, pretty = true, has_more = true }))
        io.write((p.agent_snapshots_page{ seed = 11, count = 20 }))
      ]])
      f:close()
      local r = pagegen.rng(1)
      local expected = table.concat({ r:next(), " ", r:next(), " ", r:next(), "\n",
        (pagegen.call_results_page{ seed = 7, count = 100, include_agent_results = true }),
        (pagegen.call_results_page{ seed = 8, count = 10, pretty = true, has_more = true }),
        (pagegen.agent_snapshots_page{ seed = 11, count = 20 }) })
      local ran = 0
      for _, interp in ipairs({ "lua5.4", "luajit" }) do
        local probe = io.popen("command -v " .. interp .. " 2>/dev/null")
        local found = probe:read("*l")
        probe:close()
        if found then
          local p = io.popen(interp .. " " .. script .. " 2>&1")
          local out = p:read("*a")
          p:close()
          assert(out == expected, interp .. " output differs (" .. #out .. " vs " .. #expected .. " bytes): "
            .. out:sub(1, 200))
          ran = ran + 1
        end
      end
      os.remove(script)
      assert.is_true(ran >= 1)
    end)
  end)
end)
