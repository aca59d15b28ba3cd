-- The build itself: the module exports one symbol, and `luarocks make` installs a
-- module that loads in this interpreter (the 5.4 rock under Lua 5.4, the 5.1 rock
-- under LuaJIT).
local lua_version = jit and "5.1" or _VERSION:match("%d+%.%d+")
local interpreter = jit and "luajit" or "lua" .. lua_version

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  local ok, _, code = p:close()
  if type(ok) == "number" then code = ok end -- LuaJIT returns the status alone
  return (ok == true or code == 0), out
end

local function tmpdir()
  local ok, out = run("mktemp -d")
  assert(ok, out)
  return (out:gsub("%s+$", ""))
end

describe("the built module", function()
  local so = package.searchpath("blandeval.core", package.cpath)

  it("is found on the cpath", function()
    assert.is_string(so)
  end)

  it("exports luaopen_blandeval_core and nothing else", function()
    local ok, out = run("nm -D --defined-only " .. so)
    assert.is_true(ok, out)
    local symbols = {}
    for name in out:gmatch("%x+ %a ([%w_@.]+)") do symbols[#symbols + 1] = name end
    assert.are.same({ "luaopen_blandeval_core" }, symbols)
  end)

  it("does not link a Lua library (the host provides the Lua API)", function()
    local ok, out = run("ldd " .. so)
    assert.is_true(ok, out)
    assert.is_nil(out:find("liblua", 1, true), out)
    assert.is_nil(out:find("libluajit", 1, true), out)
    assert.truthy(out:find("libcurl", 1, true), out)
  end)
end)

describe("luarocks make", function()
  it("installs every module and the command (Lua " .. lua_version .. ")", function()
    -- every file of lua/blandeval/ must be in the rockspec
    local modules = {}
    local _, listing = run("ls lua/blandeval/*.lua")
    for file in listing:gmatch("lua/blandeval/([%w_]+)%.lua") do
      if file ~= "init" then modules[#modules + 1] = "blandeval." .. file end
    end
    assert.is_true(#modules >= 7, listing)
    local tree = tmpdir()
    -- luarocks compiles in the source directory: a copy keeps its objects out of csrc/ and
    -- away from another run building at the same time (make sanitize beside make test)
    local src = tree .. "/src"
    assert(run(("mkdir %s && cp -R blandeval-*.rockspec csrc lua bin %s/ && rm -f %s/csrc/*.o")
      :format(src, src, src)))
    local ok, out = run(("cd %s && luarocks --lua-version=%s --tree=%s make --deps-mode=none blandeval-*.rockspec")
      :format(src, lua_version, tree))
    assert.is_true(ok, out)
    local script = ([[
      package.path = "%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua"
      package.cpath = "%s/lib/lua/%s/?.so"
      local b = require "blandeval"
      for name in ("%s"):gmatch("%%S+") do assert(require(name), name) end
      local v = assert(b.decode('{"a":[1,2.5,null],"b":"\\u00e9"}'))
      io.write(b._VERSION, " ", tostring(v.a[1]), " ", tostring(v.a[2]), " ", tostring(v.a.n), " ", v.b)
    ]]):format(tree, lua_version, tree, lua_version, tree, lua_version, table.concat(modules, " "))
    local f = assert(io.open(tree .. "/check.lua", "w"))
    f:write(script)
    f:close()
    ok, out = run(interpreter .. " " .. tree .. "/check.lua")
    local has_bin = run("test -x " .. tree .. "/bin/blandeval")
    run("rm -rf " .. tree)
    assert.is_true(has_bin, "bin/blandeval installed")
    assert.is_true(ok, out)
    assert.are.equal(require("blandeval")._VERSION .. " 1 2.5 3 \195\169", out)
  end)
end)
