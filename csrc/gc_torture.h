/* gc_torture.h: for test builds only (-DBE_GC_TORTURE, make gc-torture). Each
 * call of the core to a Lua API function that can allocate, or run a metamethod,
 * first runs a step of the collector. A value the C code still uses after it
 * left the stack (popped, replaced, never anchored) is then freed at the first
 * chance, and the use that follows reads freed memory, which ASan reports.
 * Under Lua 5.4 in generational mode (spec/support/gc_torture.lua) each step is
 * a minor collection: it frees every young object nothing references, and costs
 * little. Included last by compat.h, so that it wraps the real declarations. */
#ifndef BLANDEVAL_GC_TORTURE_H
#define BLANDEVAL_GC_TORTURE_H

/* A collection traverses the whole stack: where the decoder holds thousands of
 * pending values (huge or deeply nested input) it would take quadratic time, so
 * the collector runs only while the C function's stack is short. */
#define BE_GC_TORTURE_TOP 64

static inline void be_gc_torture(lua_State *L)
{
    if (lua_gettop(L) <= BE_GC_TORTURE_TOP)
        lua_gc(L, LUA_GCSTEP, 0);
}

/* (f)(...) calls the function itself: a macro does not expand inside itself */
#define lua_pushlstring(L, s, n) (be_gc_torture(L), (lua_pushlstring)((L), (s), (n)))
#define lua_pushstring(L, s) (be_gc_torture(L), (lua_pushstring)((L), (s)))
#define lua_pushfstring(L, ...) (be_gc_torture(L), (lua_pushfstring)((L), __VA_ARGS__))
#define lua_pushcclosure(L, f, n) (be_gc_torture(L), (lua_pushcclosure)((L), (f), (n)))
#define lua_createtable(L, a, h) (be_gc_torture(L), (lua_createtable)((L), (a), (h)))
#define lua_tolstring(L, i, n) (be_gc_torture(L), (lua_tolstring)((L), (i), (n)))
#define lua_getfield(L, i, k) (be_gc_torture(L), (lua_getfield)((L), (i), (k)))
#define lua_setfield(L, i, k) (be_gc_torture(L), (lua_setfield)((L), (i), (k)))
#define luaL_checklstring(L, i, n) (be_gc_torture(L), (luaL_checklstring)((L), (i), (n)))
#define luaL_optlstring(L, i, d, n) (be_gc_torture(L), (luaL_optlstring)((L), (i), (d), (n)))
#define luaL_newmetatable(L, name) (be_gc_torture(L), (luaL_newmetatable)((L), (name)))
#define luaL_error(L, ...) (be_gc_torture(L), (luaL_error)((L), __VA_ARGS__))
#define luaL_addlstring(B, s, n) (be_gc_torture((B)->L), (luaL_addlstring)((B), (s), (n)))
#define luaL_addstring(B, s) (be_gc_torture((B)->L), (luaL_addstring)((B), (s)))
#define luaL_pushresult(B) (be_gc_torture((B)->L), (luaL_pushresult)(B))
#if LUA_VERSION_NUM >= 504
#define lua_newuserdatauv(L, sz, n) (be_gc_torture(L), (lua_newuserdatauv)((L), (sz), (n)))
#define luaL_prepbuffsize(B, sz) (be_gc_torture((B)->L), (luaL_prepbuffsize)((B), (sz)))
#else
#define lua_newuserdata(L, sz) (be_gc_torture(L), (lua_newuserdata)((L), (sz)))
#define luaL_prepbuffer(B) (be_gc_torture((B)->L), (luaL_prepbuffer)(B))
#endif

#endif
