-- Differential test: blandeval.decode against lua-cjson on generated documents.
local blandeval = require("blandeval")
local cjson = require("cjson")
local jsongen = require("jsongen")

local decode = blandeval.decode
local mtype = math.type

local show, diff = jsongen.show, jsongen.diff

-- cjson's result converted to blandeval's default (keep_nulls=false) shape
local function strip_nulls(v)
  if type(v) ~= "table" then return v end
  local out, k1 = {}, next(v)
  if type(k1) == "number" then -- a JSON array (cjson arrays are dense: nulls are cjson.null)
    local n, has_null = #v, false
    for i = 1, n do
      if v[i] == cjson.null then has_null = true else out[i] = strip_nulls(v[i]) end
    end
    if has_null then out.n = n end
  else
    for k, x in pairs(v) do
      if x ~= cjson.null then out[k] = strip_nulls(x) end
    end
  end
  return out
end

-- Decodes `text` both ways; returns nil when blandeval agrees with cjson, else
-- "mode: first differing path ... document: ...".
local function compare(text)
  local expected = cjson.decode(text)
  local got, err, off = decode(text, { keep_nulls = true })
  if got == nil then return ("keep_nulls=true: decode failed: %s (%s)"):format(tostring(err), tostring(off)) end
  local d = diff(got, expected, "$")
  if d then return "keep_nulls=true differs at " .. d end
  got, err = decode(text)
  if got == nil then return "default mode: decode failed: " .. tostring(err) end
  if expected == cjson.null then -- top-level null is blandeval.null in both modes
    d = got ~= blandeval.null and "$: top-level null gave " .. tostring(got) or nil
  else
    d = diff(got, strip_nulls(expected), "$")
  end
  return d and "default mode differs at " .. d
end

-- Runs compare() on every text; fails with the number of disagreeing documents and
-- the first disagreement of each mode.
local function check_all(texts)
  local bad, first = 0, {}
  for _, text in ipairs(texts) do
    local d = compare(text)
    if d then
      bad = bad + 1
      local mode = d:match("^[%w_=]+")
      if not first[mode] then first[mode] = d .. "\n  document: " .. show(text) end
    end
  end
  local msgs = {}
  for _, m in pairs(first) do msgs[#msgs + 1] = m end
  table.sort(msgs)
  assert.are.equal(0, bad, ("%d of %d documents differ from cjson:\n%s"):format(bad, #texts,
    table.concat(msgs, "\n")))
end

-- BLANDEVAL_SPEC_SCALE shrinks the document counts (the valgrind run uses 0.1)
local scale = tonumber(os.getenv("BLANDEVAL_SPEC_SCALE")) or 1
local function scaled(n) return math.max(1, math.floor(n * scale)) end

local function documents(seed, count, opts)
  local gen, out = jsongen.new(seed), {}
  for i = 1, count do out[i] = gen:document(opts) end
  return out
end

describe("decode vs cjson (differential)", function()
  it("null sentinels are the same value", function()
    assert.are.equal(cjson.null, blandeval.null)
  end)

  it("the comparison itself detects differences", function()
    assert.is_nil(diff({ 1, { a = "x" } }, { 1.0, { a = "x" } }, "$"))
    assert.truthy(diff({ 1, { a = "x" } }, { 1, { a = "y" } }, "$"))
    assert.truthy(diff({ 1, 2 }, { 1 }, "$"))
    assert.truthy(diff({ 1 }, { 1, 2 }, "$"))
    assert.truthy(diff(-0.0, 0.0, "$"))
    if mtype then assert.truthy(diff(9007199254740993, 9007199254740994.0, "$")) end
    local t = strip_nulls({ 1, cjson.null, { a = cjson.null, b = 2 } })
    assert.is_nil(diff(t, { 1, nil, { b = 2 }, n = 3 }, "$"))
  end)

  it(("agrees on %d generated documents (seed 20240601)"):format(scaled(3000)), function()
    check_all(documents(20240601, scaled(3000)))
  end)

  it(("agrees on %d deeper documents (seed 7)"):format(scaled(1000)), function()
    check_all(documents(7, scaled(1000), { max_depth = 12, max_items = 4 }))
  end)

  it("agrees on large documents", function()
    -- arrays and objects of many generated documents, tens to hundreds of kB each
    local texts = {}
    for i, o in ipairs({ { 2, 40 }, { 3, 12 }, { 6, 5 }, { 1, 300 } }) do
      local docs = documents(100 + i, scaled(150), { max_depth = o[1], max_items = o[2] })
      texts[#texts + 1] = "[" .. table.concat(docs, ",") .. "]"
      for j, d in ipairs(docs) do docs[j] = '"k' .. (j % 150) .. '":' .. d end
      texts[#texts + 1] = "{" .. table.concat(docs, ",") .. "}"
    end
    for _, t in ipairs(texts) do assert.is_true(#t > 20000 * scale, "document too small") end
    check_all(texts)
  end)

  it("agrees on many top-level scalars", function()
    local gen, texts = jsongen.new(4242), {}
    for i = 1, scaled(2000) do
      texts[2 * i - 1] = gen:ws() .. gen:number() .. gen:ws()
      texts[2 * i] = gen:string()
    end
    check_all(texts)
  end)
end)
