-- Runs busted inside an nginx worker (content_by_lua), so that specs run with the
-- ngx transport: GET /_t/busted?root=DIR&spec=FILE&spec=FILE... answers with busted's
-- plain output. busted writes to stdout and ends with os.exit; both are caught.
return function()
  local args = ngx.req.get_uri_args()
  local specs = args.spec
  if type(specs) ~= "table" then specs = { specs } end
  local buf = {}
  local out = {
    write = function(self, ...)
      for i = 1, select("#", ...) do buf[#buf + 1] = tostring((select(i, ...))) end
      return self
    end,
    flush = function() end, close = function() end, setvbuf = function() end,
  }
  local saved = { io.stdout, io.write, print, os.exit, _G.arg, package.path, package.cpath }
  io.stdout = out
  io.write = function(...) return out:write(...) end
  print = function(...)
    local t = {}
    for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
    out:write(table.concat(t, "\t"), "\n")
  end
  os.exit = function(code) error({ busted_exit = code }, 0) end
  local argv = { [0] = "busted", "-o", "plainTerminal", "--directory=" .. args.root,
    "--exclude-tags=curl", "--lpath=lua/?.lua;lua/?/init.lua;spec/support/?.lua",
    "--cpath=build/luajit/?.so" }
  for _, s in ipairs(specs) do argv[#argv + 1] = s end
  _G.arg = argv
  local ok, err = pcall(require("busted.runner"), { standalone = false })
  io.stdout, io.write, print, os.exit, _G.arg = saved[1], saved[2], saved[3], saved[4], saved[5]
  package.path, package.cpath = saved[6], saved[7]
  for k in pairs(package.loaded) do          -- the next run starts from fresh modules
    if k:match("^busted") or k:match("^luassert") or k:match("^say") then package.loaded[k] = nil end
  end
  if not ok and not (type(err) == "table" and err.busted_exit) then buf[#buf + 1] = "\n" .. tostring(err) end
  ngx.print(table.concat(buf))
end
