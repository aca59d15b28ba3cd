-- JSONTestSuite (test_parsing): y_ must decode, n_ must be rejected, i_ must give the
-- result documented in the contract. Folder: $JSONTESTSUITE_DIR or
-- ../shared/testdata/JSONTestSuite/test_parsing (relative to the repo root).
-- Without the folder only the built-in cases run and the folder tests are pending.
local blandeval = require("blandeval")
local cjson = require("cjson")
local jsongen = require("jsongen")
local lfs = require("lfs")

local decode = blandeval.decode
local show, diff = jsongen.show, jsongen.diff
local mtype = math.type

local DIR = os.getenv("JSONTESTSUITE_DIR") or "../shared/testdata/JSONTestSuite/test_parsing"
local FFFD = "\239\191\189"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function accepts(text)
  local v, err, off = decode(text)
  assert.is_not_nil(v, ("rejected %s: %s (offset %s)"):format(show(text), tostring(err), tostring(off)))
  local v2 = decode(text, { keep_nulls = true })
  local ok, expected = pcall(cjson.decode, text)
  if ok then
    local d = diff(v2, expected, "$")
    assert.is_nil(d, ("differs from cjson for %s at %s"):format(show(text), tostring(d)))
  end
  return v
end

local function rejects(text)
  local v, err, off = decode(text)
  assert.is_nil(v, ("accepted %s"):format(show(text)))
  assert.are.equal("string", type(err))
  assert.are.equal("number", type(off))
  if mtype then assert.are.equal("integer", mtype(off)) end
  assert.is_true(off >= 0 and off <= #text, ("offset %s outside [0, %d]"):format(off, #text))
  local suffix = " at offset " .. off
  assert.are.equal(suffix, err:sub(-#suffix), "message must end with '" .. suffix .. "': " .. err)
  return err, off
end

describe("JSONTestSuite built-in cases", function()
  local Y = { "[]", "{}", "0", "-0.5e+3", '"\\u00e9\\ud834\\udd1e"', " [1, 2.5, \"x\"] ",
    '{"a":{"b":[true,false,null]}}', "null", '"\xF0\x9D\x84\x9E"', "[[[[]]]]",
    '{"":0,"":1}', "\t\n\r 1E-2 \t\n\r", "[-0, 1e22, 123456789012345678901]" }
  local N = { "", " ", "[1,]", '{"a":1,}', "[01]", "tru", "'a'", "[1 2]", '{"a" 1}',
    '"abc', '"\\x"', "[1]x", "\xff", '"\xC0\xAF"', "+1", "\f1", "[.5]", '"\x01"' }
  for _, text in ipairs(Y) do
    it("accepts " .. show(text), function() accepts(text) end)
  end
  for _, text in ipairs(N) do
    it("rejects " .. show(text), function() rejects(text) end)
  end
end)

-- Expected outcome of every i_ file: accepted value (decoded with default options), or
-- rejection offset (and message words).
local I = {
  i_number_double_huge_neg_exp = { value = { 0.0 }, float = true },
  i_number_huge_exp = { offset = 1, words = "number out of range" },
  i_number_neg_int_huge_exp = { offset = 1, words = "number out of range" },
  i_number_pos_double_huge_exp = { offset = 1, words = "number out of range" },
  i_number_real_neg_overflow = { offset = 1, words = "number out of range" },
  i_number_real_pos_overflow = { offset = 1, words = "number out of range" },
  i_number_real_underflow = { value = { 0.0 }, float = true },
  i_number_too_big_neg_int = { value = { tonumber("-123123123123123123123123123123") }, float = true },
  i_number_too_big_pos_int = { value = { 1e20 }, float = true },
  i_number_very_big_negative_int = {
    value = { tonumber("-237462374673276894279832749832423479823246327846") }, float = true },
  i_object_key_lone_2nd_surrogate = { value = { [FFFD] = 0 } },
  i_string_1st_surrogate_but_2nd_missing = { value = { FFFD } },
  i_string_1st_valid_surrogate_2nd_invalid = { value = { FFFD .. "\225\136\180" } },
  i_string_UTF_16LE_with_BOM = { offset = 0, words = "unexpected byte 0xff" },
  i_string_UTF_8_invalid_sequence = { offset = 7, words = "invalid UTF-8" },
  i_string_UTF8_surrogate_U_D800 = { offset = 3, words = "invalid UTF-8" },
  i_string_incomplete_surrogate_and_escape_valid = { value = { FFFD .. "\n" } },
  i_string_incomplete_surrogate_pair = { value = { FFFD .. "a" } },
  i_string_incomplete_surrogates_escape_valid = { value = { FFFD .. FFFD .. "\n" } },
  i_string_invalid_lonely_surrogate = { value = { FFFD } },
  i_string_invalid_surrogate = { value = { FFFD .. "abc" } },
  i_string_invalid_utf_8 = { offset = 2, words = "invalid UTF-8" },
  i_string_inverted_surrogates_U_1D11E = { value = { FFFD .. FFFD } },
  i_string_iso_latin_1 = { offset = 3, words = "invalid UTF-8" },          -- E9 is a lead byte; '"' breaks it
  i_string_lone_second_surrogate = { value = { FFFD } },
  i_string_lone_utf8_continuation_byte = { offset = 2, words = "invalid UTF-8" },
  i_string_not_in_unicode_range = { offset = 3, words = "invalid UTF-8" }, -- F4 BF: BF > 8F
  i_string_overlong_sequence_2_bytes = { offset = 2, words = "invalid UTF-8" },
  i_string_overlong_sequence_6_bytes = { offset = 2, words = "invalid UTF-8" },
  i_string_overlong_sequence_6_bytes_null = { offset = 2, words = "invalid UTF-8" },
  i_string_truncated_utf_8 = { offset = 3, words = "invalid UTF-8" },      -- E0 FF: FF at 3
  i_string_utf16BE_no_BOM = { offset = 0 },
  i_string_utf16LE_no_BOM = { offset = 1 },
  i_structure_500_nested_arrays = { depth = 500 },
  i_structure_UTF_8_BOM_empty_object = { value = {} },
}

-- file name -> key of I (the Lua identifiers use '_' for '-' and '+')
local function ikey(name)
  return (name:gsub("%.json$", ""):gsub("[-+]", "_"))
end

local function check_i(name, text)
  local e = assert(I[ikey(name)], "no expectation for " .. name)
  if e.offset then
    local err, off = rejects(text)
    assert.are.equal(e.offset, off, err)
    if e.words then assert.truthy(err:find(e.words, 1, true), err) end
    return
  end
  local v, err = decode(text)
  assert.is_not_nil(v, tostring(err))
  if e.depth then
    local d = 1
    while v[1] ~= nil do v, d = v[1], d + 1 end
    assert.are.equal(e.depth, d)
    assert.is_nil(next(v))
  else
    assert.are.same(e.value, v)
    if e.float and mtype then assert.are.equal("float", mtype(v[1])) end
  end
end

describe("JSONTestSuite files", function()
  if lfs.attributes(DIR, "mode") ~= "directory" then
    pending("JSONTestSuite folder not found (" .. DIR .. "); set JSONTESTSUITE_DIR")
    return
  end
  local files = { y = {}, n = {}, i = {} }
  for name in lfs.dir(DIR) do
    local kind = name:match("^([yni])_.*%.json$")
    if kind then table.insert(files[kind], name) end
  end
  for _, list in pairs(files) do table.sort(list) end

  it("has exactly 95 y_, 188 n_ and 35 i_ files, each i_ file documented here", function()
    assert.are.equal(95, #files.y)
    assert.are.equal(188, #files.n)
    assert.are.equal(35, #files.i)
    local seen, count = {}, 0
    for _, name in ipairs(files.i) do
      assert.is_not_nil(I[ikey(name)], "no expectation for " .. name)
      seen[ikey(name)] = true
    end
    for k in pairs(I) do
      assert.is_true(seen[k], "expectation without file: " .. k)
      count = count + 1
    end
    assert.are.equal(35, count)
  end)

  for _, name in ipairs(files.y) do
    it("accepts " .. name, function() accepts(read(DIR .. "/" .. name)) end)
  end
  for _, name in ipairs(files.n) do
    it("rejects " .. name, function() rejects(read(DIR .. "/" .. name)) end)
  end
  for _, name in ipairs(files.i) do
    it("i_ as documented: " .. name, function() check_i(name, read(DIR .. "/" .. name)) end)
  end
end)
