-- Writes the seed corpora of the fuzz targets: lua5.4 spec/fuzz/corpus.lua DIR
-- (LUA_PATH must reach spec/support/) creates DIR/<target>/seed-* from the
-- JSONTestSuite files (../shared/testdata/JSONTestSuite/test_parsing, or
-- $JSONTESTSUITE_DIR; without them the built-in sample of
-- spec/decode_suite_spec.lua), pages from spec/support/pagegen.lua and the
-- API's error bodies. Seeds are rewritten on every run; what the fuzzer adds
-- next to them stays.
local pagegen = require "pagegen"

local out = assert(arg[1], "usage: corpus.lua DIR")
local SUITE = os.getenv("JSONTESTSUITE_DIR") or "../shared/testdata/JSONTestSuite/test_parsing"

local function write(target, name, bytes)
  local f = assert(io.open(("%s/%s/seed-%s"):format(out, target, name), "wb"))
  f:write(bytes)
  f:close()
end

for _, t in ipairs { "decode", "decode_diff", "pager_response", "url" } do
  assert(os.execute(("mkdir -p '%s/%s'"):format(out, t)))
end

-- JSON texts: name -> text
local texts = {}
local listing = io.popen(("ls '%s' 2>/dev/null"):format(SUITE))
for name in listing:lines() do
  if name:match("^[yni]_.*%.json$") then
    local f = assert(io.open(SUITE .. "/" .. name, "rb"))
    texts[name:gsub("%.json$", "")] = f:read("a")
    f:close()
  end
end
listing:close()
if next(texts) == nil then -- the sample the suite spec runs without the folder
  local f = assert(io.open("spec/decode_suite_spec.lua", "rb"))
  local src = f:read("a")
  f:close()
  for _, list in ipairs { "Y", "N" } do
    local ctor = assert(src:match("local " .. list .. " = (%b{})"), "no " .. list .. " list in the suite spec")
    for i, text in ipairs(assert(load("return " .. ctor))()) do texts[list .. i] = text end
  end
end

local pages = {
  call_results = pagegen.call_results_page { seed = 1, count = 3 },
  call_results_agents = pagegen.call_results_page { seed = 2, count = 2, include_agent_results = true },
  call_results_more = pagegen.call_results_page { seed = 3, count = 2, has_more = true },
  call_results_pretty = pagegen.call_results_page { seed = 4, count = 1, include_agent_results = true,
    pretty = true },
  call_results_empty = pagegen.call_results_page { seed = 5, count = 0 },
  agent_snapshots = pagegen.agent_snapshots_page { seed = 6 },
  agent_results = pagegen.agent_results_page { seed = 7, count = 1, has_more = true },
}
local errors = {
  not_found = '{"data":null,"errors":[{"error":"EVAL_RUN_NOT_FOUND","message":"Eval run not found"}]}',
  rate_limited = '{"data":null,"errors":[{"error":"RATE_LIMITED","message":"slow down"}]}',
  code = '{"errors":[{"code":"TOOL_NOT_FOUND","message":"Tool not found"}]}',
  plain = '{"status":"error","errors":["Missing required parameter"]}',
  legacy = '{"status":"error","message":"legacy"}',
  html = "<html><body>502 Bad Gateway</body></html>",
  partial = '{"data":{"object":"list","data":[],"has_more":false,"next_cursor":null},'
    .. '"errors":[{"error":"PARTIAL_FAILURE","message":"partial"}]}',
}
for name, text in pairs(pages) do texts["page_" .. name] = text end
for name, text in pairs(errors) do texts["error_" .. name] = text end

for name, text in pairs(texts) do
  write("decode_diff", name, text)
  write("decode", name, "\0" .. text)                      -- no options
  if name:match("^page_") or name:match("^y_") then
    write("decode", name .. "-keep", "\x09" .. text)       -- { keep_nulls = true }
    write("decode", name .. "-depth", "\x55" .. text)      -- { keep_nulls = false, max_depth = 8 }
  end
end

-- pager_response: config byte, cursor length and bytes, then records
-- "<status index><meta byte><body>" joined by "\n---\n" (spec/fuzz/pager_response.c)
local SEP = "\n---\n"
local S200, S404, S429, S502, S400 = 0, 17, 21, 23, 14
local function rec(status, meta, body) return string.char(status, meta) .. body end
local function pager(name, cfg, cursor, records)
  write("pager_response", name, string.char(cfg, #cursor) .. cursor .. table.concat(records, SEP))
end
local SEEN, AFTER, BEFORE, SECRET = 0x10, 0x20, 0x40, 0x80
local run_object = '{"data":{"id":"run-1","status":"COMPLETE","call_count":3,"error_code":null},"errors":null}'
pager("forward", SEEN, "", { rec(S200, 1, pages.call_results_more), rec(S200, 0, pages.call_results) })
pager("agents_secret", SEEN | AFTER | SECRET, "cur-1",
  { rec(S429, 3, errors.rate_limited), rec(S200, 2, pages.call_results_agents) })
pager("backward", SEEN | BEFORE, "zzz", { rec(S200, 0, pages.call_results_more:gsub('"next_cursor":"[^"]*"',
  '"next_cursor":null')), rec(S200, 0, pages.call_results_empty) })
pager("agent_results", 1 | SEEN, "", { rec(S200, 1, pages.agent_results) })
pager("snapshots", 2, "", { rec(S200, 0, pages.agent_snapshots) })
pager("run", 3 | 0x08, "", { rec(S404, 1, errors.not_found), rec(S200, 0, run_object) })
pager("runs", 4 | SEEN, "", { rec(S200, 0, '{"data":{"object":"list","data":[{"id":"run-3"}],'
  .. '"has_more":true,"next_cursor":"run-3"},"errors":null}'), rec(S200, 0, '{"data":{"object":"list",'
  .. '"data":[],"has_more":false,"next_cursor":null},"errors":null}') })
pager("status", 5, "", { rec(S200, 0, '{"data":{"enabled":true,"gate":"evals_enabled","reason":null},'
  .. '"errors":null}') })
pager("errors", SECRET, "", { rec(S502, 4, errors.html), rec(S400, 2, errors.plain), rec(S400, 0, errors.legacy),
  rec(S404, 3, errors.code), rec(S200, 0, errors.partial), rec(S200, 0, "[1,2]"), rec(S200, 0, '{"data":{"d') })

-- url: config byte, then values: 0 nil, 1 string (length byte, bytes), 2 number (index), 3 true,
-- 4 false, 5 table, 6 int64 (8 bytes), 7 path-like string (index) (spec/fuzz/url.c)
local function str(s) return string.char(1, #s) .. s end
local NIL, TRUE = "\0", "\3"
local function num(i) return string.char(2, i) end
local PARAMS = 0x08
write("url", "call_results", string.char(0 | PARAMS) .. str("run-1") .. TRUE .. num(2) .. NIL:rep(4)
  .. str("cursor-9") .. NIL .. NIL)
write("url", "agent_results_back", string.char(1 | PARAMS | 0x40) .. str("run a/b?c#d&e") .. NIL .. num(1)
  .. NIL:rep(4) .. NIL .. str("x\0y") .. NIL)
write("url", "runs_filters", string.char(4 | PARAMS | 0x80) .. NIL .. NIL .. num(12) .. str("agent-1")
  .. str("ws 1") .. str("COMPLETE") .. str("auto") .. NIL .. NIL .. str("evil"))
write("url", "snapshots", string.char(2) .. str("\xff\xfe%2e"))
write("url", "run_dots", string.char(3) .. "\7\2")
write("url", "status", string.char(5 | 0xC0) .. NIL)
write("url", "named", string.char(6) .. str("call-results") .. str("r") )
