-- Behaviour of blandeval.decode (see the decode contract): numbers, nulls, strings,
-- whitespace, BOM, limits, option/argument validation and exact error offsets.
local blandeval = require("blandeval")
local cjson = require("cjson")
local jsongen = require("jsongen")

local decode, null = blandeval.decode, blandeval.null
local show = jsongen.show
local mtype = math.type
local IS54 = mtype ~= nil
local concat, rep = table.concat, string.rep
local FFFD = "\239\191\189"

local function ok(text, opts)
  local v, err = decode(text, opts)
  assert.is_not_nil(v, ("rejected %s: %s"):format(show(text), tostring(err)))
  return v
end

-- asserts a rejection at exactly `offset`, with `words` (plain) in the message
local function fails(text, offset, words, opts)
  local v, err, off = decode(text, opts)
  assert.is_nil(v, "accepted " .. show(text))
  assert.are.equal("string", type(err))
  assert.are.equal(offset, off, ("offset for %s (message: %s)"):format(show(text), err))
  if IS54 then assert.are.equal("integer", mtype(off)) end
  local suffix = " at offset " .. offset
  assert.are.equal(suffix, err:sub(-#suffix), "message must end with the offset: " .. err)
  if words then
    assert.truthy(err:find(words, 1, true), ("message %q lacks %q"):format(err, words))
  end
end

local function keys(t) -- "k1,k2,..." sorted, to check exactly which fields exist
  local out = {}
  for k in pairs(t) do out[#out + 1] = tostring(k) end
  table.sort(out)
  return concat(out, ",")
end

local function is_negzero(x) return x == 0 and 1 / x == -math.huge end

describe("decode: numbers", function()
  local kinds = {
    { "0", "integer" }, { "1", "integer" }, { "-1", "integer" }, { "123456789", "integer" },
    { "9007199254740993", "integer" }, { "9223372036854775807", "integer" },
    { "-9223372036854775808", "integer" }, { "9223372036854775808", "float" },
    { "-9223372036854775809", "float" }, { "100000000000000000000", "float" },
    { "1.0", "float" }, { "1e2", "float" }, { "1E2", "float" }, { "1e+2", "float" },
    { "1e-2", "float" }, { "-1.5", "float" }, { "0.0", "float" }, { "0e0", "float" },
  }
  for _, c in ipairs(kinds) do
    it(c[1] .. (IS54 and (" is a Lua " .. c[2]) or " is a number"), function()
      local v = ok(c[1])
      assert.are.equal("number", type(v))
      assert.are.equal(tonumber(c[1]), v)
      if IS54 then assert.are.equal(c[2], mtype(v)) end
    end)
  end

  it("int64 limits", function()
    if IS54 then
      assert.are.equal(math.maxinteger, ok("9223372036854775807"))
      assert.are.equal(math.mininteger, ok("-9223372036854775808"))
      assert.are.equal(9007199254740993, ok("9007199254740993"))
    end
    assert.are.equal(2 ^ 63, ok("9223372036854775808"))
    assert.are.equal(-2 ^ 63, ok("-9223372036854775809"))
  end)

  it("-0 is float -0.0, 0 is +0", function()
    for _, s in ipairs({ "-0", "-0.0", "-0e3", "[-0]" }) do
      local v = ok(s)
      if type(v) == "table" then v = v[1] end
      assert.is_true(is_negzero(v), s)
      if IS54 then assert.are.equal("float", mtype(v)) end
    end
    assert.are.equal(math.huge, 1 / ok("0"))
  end)

  it("fractions and exponents are correctly rounded (same as tonumber)", function()
    local lits = { "0.1", "187.4", "1.7976931348623157e308", "1.7976931348623158e308",
      "5e-324", "4.9406564584124654e-324", "2.4703282292062327e-324", "2.4703282292062328e-324",
      "2.2250738585072014e-308", "2.2250738585072011e-308", "2.2250738585072012e-308",
      "123456789012345678901234567890.5", "0.30000000000000004", "1e23", "8.98846567431158e307",
      "7.038531e-26", "9007199254740993.0", "9007199254740993e0", "-1e-400", "1e-400",
      "1.00000000000000011102230246251565404236316680908203125",
      "1.00000000000000011102230246251565404236316680908203126",
      "0.000000000000000000000000000000000000000000001e45", "3.141592653589793238462643383279",
      "100000000000000000000000000000000000000000000000000000000000000000000000000e-74",
      "1.7976931348623159e308", "-1e400", "1e310", "0.5e-323", "2.5e-324", "1E+00000000000022" }
    local gen, r = jsongen.new(31337), jsongen.rng(4711)
    for _ = 1, 400 do
      local s = (r(2) == 1 and "-" or "") .. gen:uint(25)
      if r(3) > 1 then s = s .. "." .. gen:digits(r(25)) end
      if r(2) == 1 then s = s .. ({ "e", "E" })[r(2)] .. ({ "", "+", "-" })[r(3)] .. (r(345) - 1) end
      lits[#lits + 1] = s
    end
    for _, s in ipairs(lits) do
      local want = assert(tonumber(s), s)
      if want == math.huge or want == -math.huge then
        fails(s, 0, "number out of range")
      else
        local v = ok(s)
        assert.are.equal(want, v, ("%s: got %.17g, want %.17g"):format(s, v, want))
        if want == 0 and s ~= "-0" then assert.are.equal(1 / want, 1 / v, s .. ": sign of zero") end
        if IS54 and s ~= "-0" then assert.are.equal(mtype(want), mtype(v), s) end
      end
    end
  end)

  it("overflowing numbers are rejected at their first byte", function()
    fails("[1e400]", 1, "number out of range")
    fails("-1e400", 0, "number out of range")
    fails("  1.8e308", 2, "number out of range")
    fails('{"a":-1e999}', 5, "number out of range")
    fails("[1, 123123e100000]", 4, "number out of range")
    fails("1e9999999", 0, "number out of range")        -- exponents with many digits
    fails("[1.5e4294967297]", 1, "number out of range")
    assert.are.equal(0, ok("1e-9999999"))
  end)

  it("weighs leading and trailing zeros against long exponents exactly #heavy", function()
    local zeros = rep("0", 2000000)
    -- 0.000...0001e2000001 is 1: in range although its exponent text is huge
    assert.are.equal(1, ok("0." .. zeros .. "1e2000001"))
    assert.are.equal(-2.5, ok("-0." .. zeros .. "25e2000001"))
    -- 1000...000e-2000001 is 0.1 (two million trailing zeros in the integer)
    assert.are.equal(0.1, ok("1" .. zeros .. "e-2000001"))
    fails("1" .. zeros .. "e-1000", 0, "number out of range")
    assert.are.equal(0, ok("0." .. zeros .. "1"))
    local z = ok("-0.0e99999999999")
    assert.are.equal(-math.huge, 1 / z)
  end)

  it("rejects non-ASCII digits", function()
    fails("[\239\188\145]", 1, "unexpected byte 0xef") -- U+FF11 fullwidth one
  end)
end)

describe("decode: null", function()
  it("blandeval.null is cjson.null (a lightuserdata)", function()
    assert.are.equal(cjson.null, null)
    assert.are.equal("userdata", type(null))
  end)

  it("top-level null is blandeval.null in both modes", function()
    assert.are.equal(null, decode("null"))
    assert.are.equal(null, decode(" null\n", { keep_nulls = false }))
    assert.are.equal(null, decode("null", { keep_nulls = true }))
  end)

  it("object members holding null are absent by default", function()
    local v = ok('{"a":null,"b":1,"c":null}')
    assert.are.equal("b", keys(v))
    assert.are.equal(1, v.b)
    assert.are.equal("", keys(ok('{"a":null}')))
  end)

  it("arrays with nulls get n, independent of #", function()
    local v = ok("[1,null,3]")
    assert.are.equal("1,3,n", keys(v))
    assert.are.same({ 1, nil, 3, n = 3 }, v)
    assert.are.same({ n = 1 }, ok("[null]"))
    assert.are.same({ n = 3 }, ok("[null,null,null]"))
    assert.are.same({ 1, n = 2 }, ok("[1,null]"))
    assert.are.same({ a = { n = 1 }, b = { { n = 2 } } }, ok('{"a":[null],"b":[[null,null]]}'))
  end)

  it("arrays without nulls have no n", function()
    assert.are.equal("1,2", keys(ok("[1,2]")))
    assert.are.equal("", keys(ok("[]")))
    assert.is_nil(ok('[{"a":null}]').n)
  end)

  it("keep_nulls=true keeps blandeval.null and adds no n", function()
    local v = ok("[1,null,3]", { keep_nulls = true })
    assert.are.equal("1,2,3", keys(v))
    assert.are.equal(null, v[2])
    assert.are.same({ null }, ok("[null]", { keep_nulls = true }))
    v = ok('{"a":null,"b":[null]}', { keep_nulls = true })
    assert.are.equal(null, v.a)
    assert.are.equal("1", keys(v.b))
  end)
end)

describe("decode: objects", function()
  it("duplicate keys: the last one wins", function()
    assert.are.same({ a = 2 }, ok('{"a":1,"a":2}'))
    assert.are.same({ a = 1, b = 3 }, ok('{"a":null,"b":2,"a":1,"b":3}'))
    assert.are.equal("", keys(ok('{"a":1,"a":null}'))) -- last value is null: absent
    assert.are.equal(null, ok('{"a":1,"a":null}', { keep_nulls = true }).a)
    assert.are.same({ a = { y = 2 } }, ok('{"a":{"x":1},"a":{"y":2}}'))
  end)

  it("keys are strings, even numeric ones", function()
    local v = ok('{"1":"a","n":2,"":3}')
    assert.are.equal("a", v["1"])
    assert.is_nil(v[1])
    assert.are.equal(2, v.n)
    assert.are.equal(3, v[""])
  end)
end)

describe("decode: strings", function()
  it("decodes the escapes", function()
    assert.are.equal("\"\\/\b\f\n\r\t", ok('"\\"\\\\\\/\\b\\f\\n\\r\\t"'))
    assert.are.equal("A\195\169\226\130\172\239\191\191", ok('"\\u0041\\u00e9\\u20AC\\uFFFF"'))
    assert.are.equal("\223\191", ok('"\\u07ff"'))
  end)

  it("\\u0000 gives an embedded NUL", function()
    local s = ok('"a\\u0000b"')
    assert.are.equal(3, #s)
    assert.are.equal("a\0b", s)
    assert.are.same({ ["\0"] = 0 }, ok('{"\\u0000":0}'))
  end)

  it("surrogate pairs give 4-byte UTF-8", function()
    assert.are.equal("\240\157\132\158", ok('"\\uD834\\uDD1E"'))
    assert.are.equal("\240\157\132\158", ok('"\\ud834\\udd1e"'))
    assert.are.equal("\240\144\128\128", ok('"\\uD800\\uDC00"'))
    assert.are.equal("\244\143\191\191", ok('"\\uDBFF\\uDFFF"'))
  end)

  it("lone surrogates give U+FFFD", function()
    local cases = {
      { '"\\uD800"', FFFD }, { '"\\uDC00"', FFFD }, { '"\\uDFFF"', FFFD },
      { '"\\uD800x"', FFFD .. "x" }, { '"\\uD800\\n"', FFFD .. "\n" },
      { '"\\uD800\\u0041"', FFFD .. "A" }, { '"\\uDC00\\uD800"', FFFD .. FFFD },
      { '"\\uD800\\uD800\\uDC00"', FFFD .. "\240\144\128\128" },
      { '{"\\uDFAA":1}', { [FFFD] = 1 } },
    }
    for _, c in ipairs(cases) do assert.are.same(c[2], ok(c[1])) end
  end)

  it("accepts raw UTF-8 at every boundary", function()
    for _, s in ipairs({ "\127", "\194\128", "\223\191", "\224\160\128", "\237\159\191",
                         "\238\128\128", "\239\191\191", "\240\144\128\128", "\244\143\191\191",
                         "h\195\169llo \226\130\172 \240\157\132\158" }) do
      assert.are.equal(s, ok('"' .. s .. '"'))
    end
  end)

  it("rejects invalid UTF-8 at the offending byte", function()
    local cases = {
      { '"\128"', 1 }, { '"\191"', 1 }, { '"\192\128"', 1 }, { '"\193\191"', 1 },
      { '"\195"', 2 }, { '"\224\128\128"', 2 }, { '"\224\159\191"', 2 },
      { '"\237\160\128"', 2 }, { '"\237\191\191"', 2 }, { '"\226\130A"', 3 },
      { '"\226\130"', 3 }, { '"\240\143\191\191"', 2 }, { '"\244\144\128\128"', 2 },
      { '"\245\128\128\128"', 1 }, { '"\248\136\128\128\128"', 1 }, { '"\254"', 1 },
      { '"\255"', 1 }, { '"\240\157\132"', 4 }, { '"abc\195\40"', 5 },
      { '"\195\169\255"', 3 }, { '{"\255":1}', 2 }, { '["ok","\195\169\128"]', 9 },
    }
    for _, c in ipairs(cases) do fails(c[1], c[2], "invalid UTF-8") end
    fails('"\195', 2) -- truncated by the end of input
  end)

  it("rejects raw control characters", function()
    for _, c in ipairs({ { '"a\1b"', 2 }, { '"\t"', 1 }, { '"a\nb"', 2 }, { '"\0"', 1 },
                         { '"\31"', 1 }, { '{"a\r":1}', 3 } }) do
      fails(c[1], c[2], "control character in string")
    end
  end)
end)

describe("decode: whitespace and BOM", function()
  it("accepts space, tab, LF, CR anywhere between tokens", function()
    local ws = " \t\n\r"
    assert.are.same({ 1, 2 }, ok(ws .. "[" .. ws .. "1" .. ws .. "," .. ws .. "2" .. ws .. "]" .. ws))
    assert.are.same({ a = 1, b = {} }, ok('{ "a" : 1 ,\n\t"b"\r:\n[ ] }'))
    assert.are.equal(true, ok("\n\ntrue\n\n"))
  end)

  it("rejects other whitespace", function()
    fails("\f1", 0); fails("\v1", 0); fails("1\f", 1, "trailing"); fails("[1,\v2]", 3)
    fails("\194\160" .. "1", 0, "unexpected byte 0xc2"); fails("\226\128\139" .. "1", 0)
    fails("1\0", 1); fails("\0", 0)
  end)

  it("skips a UTF-8 BOM at offset 0 only", function()
    assert.are.same({}, ok("\239\187\191{}"))
    assert.are.equal(1, ok("\239\187\191 1"))
    assert.are.equal(null, ok("\239\187\191null"))
    fails("\239\187\191", 3, "unexpected end of input")
    fails(" \239\187\191" .. "1", 1)
    fails("\239\187\191\239\187\191" .. "1", 3)
    fails('["\239\187\191",\239\187\191' .. "1]", 7)
    -- "\xEF\xBB" is a prefix of a valid text (BOM + value): it breaks at the next byte
    fails("\239\187{}", 2)
  end)

  it("rejects UTF-16", function()
    fails("\255\254[\0]\0", 0, "unexpected byte 0xff")
    fails("\254\255\0[\0]", 0, "unexpected byte 0xfe")
    fails("\0[\0]", 0)
    fails("[\0]\0", 1)
  end)
end)

-- nest(depth, ws): text nesting `depth` alternating arrays/objects with siblings at
-- every level, innermost value 0; and the offsets of each level's opening bracket.
local function nest(depth, ws)
  local open, close, offsets, len = {}, {}, {}, 0
  for i = 1, depth do
    local o = (i % 2 == 1) and (ws .. "[" .. ws .. "1," .. ws) or ('{"a":1,' .. ws .. '"k":' .. ws)
    offsets[i] = len + o:find("[[{]") - 1
    open[i], len = o, len + #o
    close[depth - i + 1] = (i % 2 == 1) and (ws .. "]") or "}"
  end
  return concat(open) .. "0" .. concat(close), offsets
end

local function check_nest(v, depth)
  for i = 1, depth do
    if i % 2 == 1 then
      assert.are.equal(1, v[1]); v = v[2]
    else
      assert.are.equal(1, v.a); v = v.k
    end
  end
  assert.are.equal(0, v)
end

describe("decode: limits", function()
  it("max_depth: exactly max_depth levels pass, one more fails at its bracket", function()
    for _, d in ipairs({ 1, 2, 3, 7, 50 }) do
      for _, ws in ipairs({ "", " \n" }) do
        local text = nest(d, ws)
        check_nest(ok(text, { max_depth = d }), d)
        local deeper, offsets = nest(d + 1, ws)
        fails(deeper, offsets[d + 1], "max_depth (" .. d .. ")", { max_depth = d })
      end
    end
  end)

  it("max_depth counts the current nesting, not the total", function()
    ok("[[],[[]]]", { max_depth = 3 })
    fails("[[],[[]]]", 5, "max_depth", { max_depth = 2 })
    fails('{"a":{},"b":{"c":{}}}', 17, "max_depth", { max_depth = 2 })
    ok("1", { max_depth = 1 }); ok('"x"', { max_depth = 1 }); ok("{}", { max_depth = 1 })
    fails('{"a":[]}', 5, "max_depth", { max_depth = 1 })
  end)

  it("max_depth is checked before the end of input", function()
    fails(rep("[", 2000), 1000, "max_depth (1000)")
    fails(rep("[", 5), 3, "max_depth", { max_depth = 3 })
  end)

  it("default max_depth is 1000 (1000 mixed levels pass, 1001 fail)", function()
    for _, ws in ipairs({ "", " " }) do
      check_nest(ok((nest(1000, ws))), 1000)
      local text, offsets = nest(1001, ws)
      fails(text, offsets[1001], "max_depth (1000)")
    end
    ok(rep("[", 1000) .. rep("]", 1000))
    fails(rep("[", 1001) .. rep("]", 1001), 1000, "max_depth")
    ok(rep("[", 1001) .. rep("]", 1001), { max_depth = 1001 })
  end)

  it("max_size: #text == max_size passes, one more byte fails at offset max_size", function()
    ok("[1,2]", { max_size = 5 })
    fails("[1,2]", 4, "max_size (4", { max_size = 4 })
    fails("1", 0, "max_size (0", { max_size = 0 })
    fails("xyz", 1, "max_size", { max_size = 1 }) -- refused before parsing
    fails("", 0, "unexpected end of input", { max_size = 0 })
  end)

  it("default max_size is 64 MiB #heavy", function()
    local limit = 67108864
    local text = rep(" ", limit - 1) .. "1"
    assert.are.equal(1, ok(text))
    fails(text .. " ", limit, "max_size (67108864")
    text = nil
    collectgarbage()
  end)

  it("large arrays and objects", function()
    local n, t = 100000, {}
    for i = 1, n do t[i] = tostring(i) end
    local v = ok("[" .. concat(t, ",") .. "]")
    assert.are.equal(n, #v)
    for i = 1, n do if v[i] ~= i then assert.are.equal(i, v[i]) end end
    if IS54 then assert.are.equal("integer", mtype(v[n])) end

    for i = 1, n do t[i] = '"s' .. i .. '"' end
    v = ok("[" .. concat(t, ",") .. "]")
    assert.are.equal(n, #v)
    for i = 1, n do if v[i] ~= "s" .. i then assert.are.equal("s" .. i, v[i]) end end

    for i = 1, n do t[i] = (i % 3 == 0) and "null" or tostring(i) end
    v = ok("[" .. concat(t, ",") .. "]")
    assert.are.equal(n, v.n)
    assert.is_nil(v[3]); assert.is_nil(v[n - 1]); assert.are.equal(n - 2, v[n - 2])

    local m, o = 20000, {}
    for i = 1, m do o[i] = '"k' .. i .. '":' .. i end
    v = ok("{" .. concat(o, ",") .. "}")
    local count = 0
    for k, x in pairs(v) do
      count = count + 1
      if "k" .. x ~= k then assert.are.equal("k" .. x, k) end
    end
    assert.are.equal(m, count)

    for i = 1, 10000 do o[i] = '{"i":' .. i .. ',"a":[' .. i .. ',"x"],"o":{}}' end
    v = ok("[" .. concat(o, ",", 1, 10000) .. "]")
    assert.are.equal(10000, #v)
    assert.are.same({ i = 9999, a = { 9999, "x" }, o = {} }, v[9999])
  end)

  it("many empty containers as elements and members", function()
    local v = ok("[" .. rep("[],{},", 10000) .. "[]]")
    assert.are.equal(20001, #v)
    assert.are.same({}, v[20000])
    local o = {}
    for i = 1, 20000 do o[i] = '"k' .. i .. '":' .. (i % 2 == 0 and "{}" or "[]") end
    v = ok("{" .. concat(o, ",") .. "}")
    assert.are.same({}, v.k20000)
    v = ok("[" .. rep("[],", 1100000) .. "{}]")
    assert.are.equal(1100001, #v)
  end)
end)

describe("decode: arguments and options", function()
  local function raises(pattern, ...)
    local okp, err = pcall(decode, ...)
    assert.is_false(okp, "no error raised for " .. pattern)
    assert.truthy(tostring(err):find(pattern, 1, true), tostring(err))
  end

  it("text must be a string", function()
    raises("string expected")
    raises("string expected", nil)
    raises("string expected", {})
    raises("string expected", true)
    raises("string expected", 123)      -- a number is not JSON text, though Lua could convert it
    raises("string expected", 1e301)
  end)

  it("max_depth is capped by what the Lua stack can hold", function()
    local cap = jit and 2500 or 100000
    raises("max_depth", "1", { max_depth = cap + 1 })
    local s = ('{"a":'):rep(cap) .. "1" .. ("}"):rep(cap)
    assert.is_table(decode(s, { max_depth = cap }))
    -- at the cap, with many values waiting at every level
    s = ("["):rep(cap - 100) .. ("1,"):rep(3000) .. "1" .. ("]"):rep(cap - 100)
    assert.is_table(decode(s, { max_depth = cap }))
  end)

  it("opts must be a table or nil", function()
    assert.are.equal(1, decode("1", nil))
    assert.is_false(pcall(decode, "1", 5))
    assert.is_false(pcall(decode, "1", "x"))
    assert.is_false(pcall(decode, "1", true))
  end)

  it("wrong option values raise an error naming the option", function()
    local bad = {
      { keep_nulls = "yes" }, { keep_nulls = 1 },
      { max_depth = "10" }, { max_depth = 0 }, { max_depth = -1 }, { max_depth = 1.5 },
      { max_depth = true }, { max_size = -1 }, { max_size = 1.5 }, { max_size = "1" },
    }
    for _, opts in ipairs(bad) do raises(next(opts), "[1]", opts) end
  end)

  it("accepts valid option values", function()
    assert.are.same({ 1 }, decode("[1]", { keep_nulls = false, max_depth = 1, max_size = 3 }))
    assert.are.same({ null }, decode("[null]", { keep_nulls = true }))
    assert.are.same({ 1 }, decode("[1]", {}))
  end)
end)

describe("decode: the Lua stack", function()
  -- values waiting at many levels at once: each level of these holds pending
  -- members when its child opens (LuaJIT allows 8000 slots to one C call)
  it("holds wide containers at every level of a deep document", function()
    local t = {}
    for i = 1, 10 do t[i] = '"k' .. i .. '":0' end
    local member = "{" .. concat(t, ",") .. ',"z":'
    local s = "[" .. rep("0,", 3990) .. rep(member, 350) .. "0" .. rep("}", 350) .. "]"
    local v = ok(s)
    assert.are.equal(3991, #v)
    assert.are.equal(0, v[3991].z.z.k10)
    v = ok(rep(member, 1000) .. "0" .. rep("}", 1000))
    assert.are.equal(0, v.z.z.z.k1)
  end)
end)

describe("decode: numbers the VM converts", function()
  it("reads a million digits (LuaJIT's own scanner stops at 2^20) #heavy", function()
    assert.are.equal(tonumber("1." .. rep("1", 40)), ok("1." .. rep("1", 1048576)))
    assert.are.equal(1.5555555555555556, ok("[1." .. rep("5", 1048576) .. "]")[1])
    assert.are.equal(0.5, ok("0.5" .. rep("0", 2000000)))
    assert.are.equal(1, ok("1" .. rep("0", 1100000) .. "e-1100000"))
  end)

  it("rounds correctly when digits beyond the 780 kept decide a halfway case", function()
    -- 1 + 2^-53 is exactly halfway between 1 and the next double: anything above
    -- it rounds up, the halfway value itself rounds to even (1)
    local half = "1.00000000000000011102230246251565404236316680908203125"
    assert.are.equal(1, ok(half))
    assert.are.equal(1.0000000000000002, ok(half .. rep("0", 900) .. "1"))
    assert.are.equal(1, ok(half .. rep("0", 900)))
  end)

  it("does not depend on the C locale's decimal point", function()
    local dir = os.tmpname()
    os.remove(dir)
    -- a locale with a decimal comma, built for this test; a child process sees it
    -- through LOCPATH and switches to it
    os.execute(("mkdir -p %s && localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1"):format(dir, dir))
    local script = dir .. "/check.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      local b = require "blandeval"
      assert(os.setlocale("de_DE.UTF-8", "numeric"), "no locale")
      -- (LuaJIT formats numbers without the locale: check the locale on 5.4 only)
      assert(jit or tostring(1.5) == "1,5", "the locale's decimal point is not a comma")
      local v = assert(b.decode("[1.25, 1." .. ("1"):rep(250) .. ", 0.1234567890123456789012e5, 1.5e-400]"))
      assert(v[1] == 1.25 and v[2] > 1.11 and v[2] < 1.12 and v[3] == 12345.67890123456789012 and v[4] == 0)
      io.write("ok")
    ]])
    f:close()
    local interp = jit and "luajit" or "lua5.4"
    local p = io.popen(("LOCPATH=%s LUA_PATH=%q LUA_CPATH=%q %s %s 2>&1"):format(dir, package.path,
      package.cpath, interp, script))
    local out = p:read("*a")
    p:close()
    os.execute("rm -rf " .. dir)
    if out:find("no locale", 1, true) then
      pending("localedef could not build de_DE.UTF-8 here")
      return
    end
    assert.are.equal("ok", out)
  end)
end)

describe("decode: error offsets", function()
  local U = "unexpected end of input"
  local T = "trailing characters"
  local cases = {
    { "", 0, U }, { " ", 1, U }, { "[", 1, U }, { "[1", 2, U }, { "[1,", 3, U }, { "[1,2", 4, U },
    { "{", 1, U }, { '{"a"', 4, U }, { '{"a":', 5, U }, { '{"a":1', 6, U }, { '"abc', 4, U },
    { '"abc\\', 5, U }, { '"\\uD800\\u', 9, U }, { "-", 1 }, { "1.", 2 }, { "1e", 2 },
    { "1e+", 3 }, { "1.5e", 4 }, { "tru", 3 }, { "nul", 3 }, { "fals", 4 },
    { "[1,]", 3 }, { '["a",]', 5 }, { '{"a":1,}', 7, "expected string key" },
    { "{1:2}", 1, "expected string key" }, { "{,}", 1 }, { "[,1]", 1 }, { "[1,,2]", 3 },
    { '{"a":1,,}', 7 }, { '{"a":}', 5 }, { "[01]", 2 }, { "01", 1 }, { "00", 1 }, { "-01", 2 },
    { "-00", 2 }, { "1.e5", 2 }, { "1e+x", 3 }, { "1E+-2", 3 }, { "-a", 1 }, { "+1", 0 },
    { ".5", 0 }, { "-.5", 1 }, { "[-]", 2 }, { "[1.0e]", 5 }, { "0x10", 1, T }, { "1.5.3", 3, T },
    { "1e5.5", 3, T }, { "0.1.2", 3, T }, { "NaN", 0 }, { "inf", 0 }, { "-inf", 1 },
    { "Infinity", 0 }, { "-Infinity", 1 }, { "trux", 3 }, { "True", 0 }, { "nulll", 4, T },
    { "falsey", 5, T }, { "[true false]", 6, "expected ',' or ']'" },
    { "[1 2]", 3, "expected ',' or ']'" }, { "[1}", 2, "expected ',' or ']'" },
    { '["a""b"]', 4, "expected ',' or ']'" }, { '{"a" 1}', 5, "expected ':'" },
    { '{"a":1,"b"}', 10, "expected ':'" }, { '{"a":1]', 6, "expected ',' or '}'" },
    { '{"a":1 "b":2}', 7, "expected ',' or '}'" }, { "]", 0 }, { "}", 0 }, { "[}", 1 },
    { "{]", 1 }, { "[1]x", 3, T }, { "[1] x", 4, T }, { "1 2", 2, T }, { "[1,2]]", 5, T },
    { "[1]]", 3, T }, { '{"a":1}}', 7, T }, { '"\\q"', 2, "invalid escape" },
    { '"\\x41"', 2, "invalid escape" }, { '"\\U0041"', 2, "invalid escape" },
    { '"\\u12G4"', 5, "invalid \\u escape" }, { '"\\u00"', 5, "invalid \\u escape" },
    { '"\\uD800\\uZZZZ"', 9, "invalid \\u escape" }, { '{"a\\u00":1}', 7, "invalid \\u escape" },
    { '"a\1b"', 2, "control character in string" }, { "\255", 0, "unexpected byte 0xff" },
    { "\195\169", 0 }, { "[\195\169]", 1 }, { "'a'", 0 }, { '"\226\130A"', 3, "invalid UTF-8" },
    { "[1\0]", 2 },
  }
  for _, c in ipairs(cases) do
    it(show(c[1]) .. " -> " .. c[2], function() fails(c[1], c[2], c[3]) end)
  end
end)
