-- Deterministic random JSON text generator for the differential decode specs.
-- The PRNG is Park-Miller (state * 16807 mod 2^31-1): every intermediate value
-- stays below 2^53, so Lua 5.4 (integers) and LuaJIT (doubles) produce the
-- same sequence for the same seed, and therefore the same documents.
-- Also: M.diff / M.show, helpers to compare a decoded value with cjson's.
local floor = math.floor
local char, concat = string.char, table.concat

local M = {}

local MOD = 2147483647

-- rng(seed) -> function(n): an integer in [1, n] (n < 2^31)
function M.rng(seed)
  local state = floor(seed) % (MOD - 1) + 1
  return function(n)
    state = (state * 16807) % MOD
    return state % n + 1
  end
end

-- UTF-8 encoding of a code point (no bit operators, Lua 5.1 compatible).
function M.utf8(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then
    return char(0xC0 + floor(cp / 64), 0x80 + cp % 64)
  end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64,
              0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

function M.show(s) -- printable, shortened
  if #s > 300 then s = s:sub(1, 300) .. "...(" .. #s .. " bytes)" end
  return (s:gsub("[%c\128-\255]", function(c) return ("\\x%02X"):format(c:byte()) end))
end

local function numeq(ours, theirs)
  -- cjson returns floats on 5.4: compare ours as a float (exact for |x| <= 2^53,
  -- correctly rounded beyond, like cjson's strtod)
  if math.type and math.type(ours) == "integer" then ours = ours + 0.0 end
  if ours ~= theirs then return false end
  return ours ~= 0 or 1 / ours == 1 / theirs -- same sign of zero
end

local function keystr(k)
  return type(k) == "string" and ("[%q]"):format(M.show(k)) or ("[" .. tostring(k) .. "]")
end

-- Deep comparison of a blandeval result with a cjson result (null sentinels are
-- the same value). Returns nil when equal, else "path: description".
function M.diff(ours, theirs, path)
  if type(ours) ~= type(theirs) then
    return ("%s: %s (%s) vs cjson %s (%s)"):format(path, tostring(ours), type(ours),
      tostring(theirs), type(theirs))
  end
  if type(ours) == "number" then
    if not numeq(ours, theirs) then
      return ("%s: %.17g vs cjson %.17g"):format(path, ours, theirs)
    end
  elseif type(ours) == "string" then
    if ours ~= theirs then return ("%s: %q vs cjson %q"):format(path, M.show(ours), M.show(theirs)) end
  elseif type(ours) == "table" then
    for k, v in pairs(ours) do
      local d = M.diff(v, theirs[k], path .. keystr(k))
      if d then return d end
    end
    for k, v in pairs(theirs) do
      if ours[k] == nil then return ("%s: missing (cjson: %s)"):format(path .. keystr(k), tostring(v)) end
    end
  elseif ours ~= theirs then
    return ("%s: %s vs cjson %s"):format(path, tostring(ours), tostring(theirs))
  end
  return nil
end

local WS = { " ", "\t", "\n", "\r" }
local ESCAPES = { '\\"', "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t" }
local HEX = "0123456789abcdef0123456789ABCDEF"

local Gen = {}
Gen.__index = Gen

-- new(seed) -> generator; gen:document(opts) -> JSON text
-- opts: max_depth (default 8), max_items (default 6): per-container element bound
function M.new(seed)
  return setmetatable({ r = M.rng(seed) }, Gen)
end

function Gen:ws()
  local r = self.r
  if r(10) <= 6 then return "" end
  local t = {}
  for i = 1, r(3) do t[i] = WS[r(4)] end
  return concat(t)
end

function Gen:digits(n, nonzero_first)
  local r, t = self.r, {}
  for i = 1, n do t[i] = tostring(r(10) - 1) end
  if nonzero_first then t[1] = tostring(r(9)) end
  return concat(t)
end

function Gen:uint(maxlen) -- valid JSON unsigned integer part (no leading zeros)
  local n = self.r(maxlen)
  if n == 1 then return tostring(self.r(10) - 1) end
  return self:digits(n, true)
end

local SPECIAL_NUMBERS = {
  "0", "-0", "-0.0", "0e0", "0.0", "1", "-1", "9007199254740992", "9007199254740993",
  "9223372036854775807", "-9223372036854775808", "9223372036854775808",
  "-9223372036854775809", "18446744073709551615", "1E2", "1e+2", "1e-2", "5e-324",
  "1.7976931348623157e308", "2.2250738585072014e-308", "0.1", "187.4",
}

function Gen:number()
  local r = self.r
  local kind = r(8)
  local sign = (r(3) == 1) and "-" or ""
  if kind == 1 then return SPECIAL_NUMBERS[r(#SPECIAL_NUMBERS)] end
  if kind == 2 then return sign .. tostring(r(1000) - 1) end             -- small int
  if kind == 3 then return sign .. self:digits(r(4) + 15, true) end       -- ~2^53 .. int64 and beyond
  if kind == 4 then return sign .. self:digits(r(15) + 19, true) end      -- beyond int64
  local mant = sign .. self:uint(kind == 8 and 20 or 6)
  if kind ~= 5 or r(2) == 1 then mant = mant .. "." .. self:digits(r(kind == 8 and 25 or 8)) end
  if kind == 5 then return mant end
  -- exponent: keep magnitude below 1e300 (mantissa has at most 20 integer digits)
  local e = ({ "e", "E" })[r(2)] .. ({ "", "+", "-" })[r(3)]
  local neg = e:sub(-1) == "-"
  local ev = neg and (r(345) - 1) or (r(280) - 1)
  local zeros = (r(5) == 1) and "00" or ""
  return mant .. e .. zeros .. tostring(ev)
end

function Gen:hex4(cp)
  local t = {}
  for i = 4, 1, -1 do
    local d = cp % 16
    cp = floor(cp / 16)
    local upper = self.r(2) == 1 and 16 or 0
    t[i] = HEX:sub(d + upper + 1, d + upper + 1)
  end
  return "\\u" .. concat(t)
end

function Gen:bmp() -- a random BMP code point, not a surrogate
  local r = self.r
  local c = r(3)
  if c == 1 then return r(0x80) - 1 end
  if c == 2 then return r(0x800 - 0x80) + 0x7F end
  local cp = r(0x10000 - 0x800) + 0x7FF
  if cp >= 0xD800 and cp <= 0xDFFF then cp = cp - 0x800 end
  return cp
end

function Gen:string()
  local r = self.r
  local t = { '"' }
  for i = 2, r(12) do
    local k = r(10)
    if k <= 4 then                        -- printable ASCII except " and \
      local c = r(95) + 31
      if c == 34 or c == 92 then c = 97 end
      t[i] = char(c)
    elseif k == 5 then
      t[i] = ESCAPES[r(#ESCAPES)]
    elseif k == 6 then                    -- \uXXXX BMP (including \u0000 sometimes)
      t[i] = self:hex4(r(20) == 1 and 0 or self:bmp())
    elseif k == 7 then                    -- valid surrogate pair
      local cp = r(0x100000) + 0xFFFF
      local v = cp - 0x10000
      t[i] = self:hex4(0xD800 + floor(v / 1024)) .. self:hex4(0xDC00 + v % 1024)
    elseif k == 8 then                    -- raw 4-byte UTF-8
      t[i] = M.utf8(r(0x100000) + 0xFFFF)
    else                                  -- raw 2- or 3-byte UTF-8
      local cp = self:bmp()
      if cp < 0x80 then cp = cp + 0x80 end
      t[i] = M.utf8(cp)
    end
  end
  t[#t + 1] = '"'
  return concat(t)
end

function Gen:value(depth)
  local r, o = self.r, self.opts
  local k = r(10)
  if depth < o.max_depth and k <= (depth <= 1 and 8 or 3) then
    return (r(2) == 1) and self:array(depth + 1) or self:object(depth + 1)
  end
  k = r(10)
  if k <= 4 then return self:number() end
  if k <= 7 then return self:string() end
  return ({ "true", "false", "null" })[r(3)]
end

function Gen:array(depth)
  local t = {}
  for i = 1, self.r(self.opts.max_items + 1) - 1 do
    t[i] = self:ws() .. self:value(depth) .. self:ws()
  end
  if #t == 0 then return "[" .. self:ws() .. "]" end
  return "[" .. concat(t, ",") .. "]"
end

function Gen:object(depth)
  local r, t, keys = self.r, {}, {}
  for i = 1, r(self.opts.max_items + 1) - 1 do
    local key
    if #keys > 0 and r(6) == 1 then key = keys[r(#keys)] -- duplicate key
    elseif r(3) == 1 then key = '"k' .. r(5) .. '"'      -- short, often repeated
    else key = self:string() end
    keys[#keys + 1] = key
    t[i] = self:ws() .. key .. self:ws() .. ":" .. self:ws() .. self:value(depth) .. self:ws()
  end
  if #t == 0 then return "{" .. self:ws() .. "}" end
  return "{" .. concat(t, ",") .. "}"
end

function Gen:document(opts)
  opts = opts or {}
  self.opts = { max_depth = opts.max_depth or 8, max_items = opts.max_items or 6 }
  return self:ws() .. self:value(0) .. self:ws()
end

return M
