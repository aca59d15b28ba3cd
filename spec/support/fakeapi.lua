--- Starts the local fake Bland Evals API (spec/support/fakeapi.sh) for busted specs.
-- Works on Lua 5.4 and LuaJIT. Needs nginx with the lua module, openssl and curl.
--
--   local fakeapi = require "fakeapi"
--   local api = fakeapi.start()   -- a fresh server in a fresh temp dir
--   api.base_url, api.tls_url     -- "http://127.0.0.1:PORT", "https://127.0.0.1:PORT2"
--   api.cert                      -- self-signed cert for 127.0.0.1/localhost (pass as cainfo)
--   api.stats(run_id)             -- { requests =, connections =, paths = {...}, auth = {...} }
--   api.reset()                   -- clear stats and once-per-(run, cursor) fault state
--   api.stop()                    -- stop the server, remove the dir (idempotent)
--
-- The runs, faults and their behaviours are described in spec/support/fakeapi/handler.lua.

local cjson = require "cjson"

local M = {}

-- fakeapi.sh sits next to this file, wherever busted was started from.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
M.script = here .. "/fakeapi.sh"

local shell = require "shell"
local q, run = shell.q, shell.sh

local function escape(s)        -- percent-encode a query value
  return (s:gsub("[^%w%-._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function M.start()
  local dir = run("mktemp -d \"${TMPDIR:-/tmp}/fakeapi.XXXXXX\""):match("^%s*(.-)%s*$")
  assert(dir ~= "", "fakeapi: mktemp -d failed")
  -- LuaJIT's popen:close() gives no exit status: success is the printed lines.
  local out = run("sh " .. q(M.script) .. " start " .. q(dir) .. " 2>&1")
  local api = {
    dir = dir,
    base_url = out:match("BASE_URL=(%S+)"),
    tls_url = out:match("TLS_URL=(%S+)"),
    cert = out:match("CERT=(%S+)"),
  }
  if not (api.base_url and api.tls_url and api.cert) then
    os.execute("rm -rf " .. q(dir))
    error("fakeapi: start failed:\n" .. out, 2)
  end

  local function get(path)
    return run("curl -sS --max-time 10 " .. q(api.base_url .. path) .. " 2>&1")
  end
  local stopped = false

  function api.stats(run_id)
    local body = get("/_stats?run=" .. escape(run_id))
    local ok, value = pcall(cjson.decode, body)
    if not ok then error("fakeapi: bad /_stats answer: " .. body, 2) end
    return value
  end

  function api.reset()
    local body = get("/_reset")
    if not body:find('"reset":true', 1, true) then error("fakeapi: reset failed: " .. body, 2) end
  end

  function api.stop()
    if stopped then return end
    stopped = true
    run("sh " .. q(M.script) .. " stop " .. q(dir) .. " 2>&1")
    os.execute("rm -rf " .. q(dir))
  end

  return api
end

return M
