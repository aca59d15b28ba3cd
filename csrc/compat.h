/* compat.h: the few Lua C API differences between Lua 5.4 and the Lua 5.1 ABI
 * (LuaJIT 2.1, PUC 5.1 headers). Every shim carries the be_ prefix so that it can
 * never collide with a function LuaJIT or another module defines. */
#ifndef BLANDEVAL_COMPAT_H
#define BLANDEVAL_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#ifndef LUA_OK
#define LUA_OK 0
#endif

#if LUA_VERSION_NUM >= 503
#define BE_HAS_INTEGERS 1
#else
#define BE_HAS_INTEGERS 0
#endif

/* Userdata, and one Lua value (a table) attached to a userdata: a user
 * value on 5.4, the environment table on the 5.1 ABI. */
#if LUA_VERSION_NUM >= 504
#define be_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 0)
#define be_newuserdata_uv(L, sz) lua_newuserdatauv((L), (sz), 1)
#define be_setuservalue(L, idx) lua_setiuservalue((L), (idx), 1)
#define be_getuservalue(L, idx) ((void)lua_getiuservalue((L), (idx), 1))
#else
#define be_newuserdata(L, sz) lua_newuserdata((L), (sz))
#define be_newuserdata_uv(L, sz) lua_newuserdata((L), (sz))
#define be_setuservalue(L, idx) ((void)lua_setfenv((L), (idx)))
#define be_getuservalue(L, idx) lua_getfenv((L), (idx))
#endif

#if LUA_VERSION_NUM >= 502
#define be_rawlen(L, idx) lua_rawlen((L), (idx))
#else
#define be_rawlen(L, idx) lua_objlen((L), (idx))
#endif

#if LUA_VERSION_NUM >= 502
#define be_setfuncs(L, l, nup) luaL_setfuncs((L), (l), (nup))
#else
/* PUC 5.1 headers lack luaL_setfuncs (LuaJIT 2.1 has it): a static stand-in. */
static inline void be_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#endif

/* Push a whole number: an integer on 5.3+, a double on the 5.1 ABI. */
#if BE_HAS_INTEGERS
#define be_pushint(L, i) lua_pushinteger((L), (lua_Integer)(i))
#else
#define be_pushint(L, i) lua_pushnumber((L), (lua_Number)(i))
#endif

#ifdef BE_GC_TORTURE
#include "gc_torture.h"
#endif

#endif
