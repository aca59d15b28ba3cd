-- busted --helper for make gc-torture (spec/support/gc_torture.sh): the collector runs all
-- the time, so that a value the C core holds but has left unanchored is freed before it
-- is used again. The torture build of the core (-DBE_GC_TORTURE, csrc/gc_torture.h) also
-- steps the collector before each of its allocating Lua calls.
if jit then
  -- LuaJIT: a new cycle as soon as one ends, and a lot of work in every step
  collectgarbage("setpause", 0)
  collectgarbage("setstepmul", tonumber(os.getenv("GCT_STEPMUL") or 1000))
else
  -- Lua 5.4, generational: a step is a minor collection (it frees every unreachable young
  -- object), one runs after each 1% of growth, and a major one after each doubling
  collectgarbage("generational", 1, 100)
end
