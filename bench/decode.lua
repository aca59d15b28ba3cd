-- bench/decode.lua: blandeval.decode against lua-cjson's decode, in one process,
-- on realistic List Call Results pages (25 and 100 items, with and without
-- agent_results). Prints each decoder's throughput and their ratio; the anchor
-- (cjson) is measured in the same run, interleaved, so the ratio is what counts.
--
--   make bench            (both interpreters)
--   BENCH_SECONDS=2 ...   (time per measurement; default 0.3)
local blandeval = require "blandeval"
local cjson = require "cjson"
local pagegen = require "pagegen"

local seconds = tonumber(os.getenv("BENCH_SECONDS")) or 0.3
local rounds = tonumber(os.getenv("BENCH_ROUNDS")) or 5
local vm = jit and jit.version or _VERSION

-- Runs f(text) in batches until `seconds` of CPU time pass; returns bytes/s.
local function throughput(f, text)
  local n, batch, t0 = 0, 1, os.clock()
  local elapsed
  repeat
    for _ = 1, batch do f(text) end
    n = n + batch
    batch = batch * 2
    elapsed = os.clock() - t0
  until elapsed >= seconds
  return #text * n / elapsed
end

local decoders = {
  { "blandeval", function(s) return blandeval.decode(s) end },
  { "cjson", cjson.decode },
}

local cases = {
  { items = 25, agents = false },
  { items = 100, agents = false },
  { items = 25, agents = true },
  { items = 100, agents = true },
}

print(("decode benchmark on %s (best of %d rounds of %.1fs each)"):format(vm, rounds, seconds))
print(("%-34s %9s %12s %12s %7s"):format("page", "bytes", "blandeval", "cjson", "ratio"))
for _, c in ipairs(cases) do
  local text = pagegen.call_results_page { seed = 42, count = c.items, include_agent_results = c.agents }
  assert(blandeval.decode(text), "generator produced invalid JSON")
  local best = {}
  for _ = 1, rounds do
    for _, d in ipairs(decoders) do
      collectgarbage()
      local r = throughput(d[2], text)
      best[d[1]] = math.max(best[d[1]] or 0, r)
    end
  end
  local label = ("%d items%s"):format(c.items, c.agents and ", agent_results" or "")
  local ratio = best.blandeval / best.cjson
  print(("%-34s %9d %9.1f MB/s %7.1f MB/s %6.2fx"):format(label, #text,
    best.blandeval / 1e6, best.cjson / 1e6, ratio))
  if c.items == 100 and c.agents then         -- the row of bench/run.sh's table
    local is54 = not jit
    print(table.concat({ "ROW", ("P1 decode 100 items + agent results (%s)"):format(jit and "LuaJIT" or _VERSION),
      ("%.0f MB/s"):format(best.blandeval / 1e6), ("%.0f MB/s cjson"):format(best.cjson / 1e6),
      ("%.2fx"):format(ratio), is54 and ">= 2.0x" or "-", is54 and (ratio >= 2 and "yes" or "NO") or "-" }, "\t"))
  end
end
