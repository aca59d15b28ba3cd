-- Shell helpers for the specs and their support modules.
local M = {}

--- q(s): s quoted for sh.
function M.q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- sh(cmd): the command's standard output (LuaJIT's popen gives no exit status: callers
-- check what was printed). Append " 2>&1" to cmd for its errors too.
function M.sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

return M
