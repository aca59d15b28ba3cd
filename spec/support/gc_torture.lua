-- busted --helper for make gc-torture (spec/support/gc_torture.sh): the collector runs all
-- the time, so that a value the C core holds but has left unanchored is freed before it
-- is used again. The torture build of the core (-DBE_GC_TORTURE, csrc/gc_torture.h) also
-- steps the collector before each of its allocating Lua calls.
if jit then
  -- LuaJIT: a new cycle as soon as one ends (pause 0), at the default step multiplier:
  -- 1000 took the whole suite from 4 to 7 minutes, and the core steps it at each call anyway
  collectgarbage("setpause", 0)
  collectgarbage("setstepmul", 200)
else
  -- Lua 5.4, generational: each step of the core's is a minor collection (every unreachable
  -- young object is freed), and Lua code gets one after each 1% of growth
  collectgarbage("generational", 1, 100)
end
