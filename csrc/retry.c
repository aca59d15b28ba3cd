/* retry.c: the retry policy, shared by every transport. Pure computation:
 * whether another attempt is allowed and how long to wait before it. */

#include "blandeval.h"

/* A uniform number in [0, 1) from an xorshift64* state. */
double be_uniform(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (double)((x * 0x2545F4914F6CDD1Du) >> 11) / 9007199254740992.0;
}

/* The wait in seconds before attempt + 1, after attempt failed with an error
 * that may be retried; negative when no further attempt is allowed. The wait
 * is exponential with jitter in [half, full], or what the server asked for in
 * Retry-After (retry_after >= 0), capped; a wait that would end past the
 * deadline (seconds left, < 0: none) allows no attempt. u is a uniform random
 * number in [0, 1) for the jitter. */
double be_retry_wait(const be_retry_policy *rp, int attempt, double retry_after,
                     double left, double u)
{
    double d = rp->base;
    int i;

    if (attempt > rp->max_retries)
        return -1;
    if (retry_after >= 0) {
        d = retry_after < rp->after_max ? retry_after : rp->after_max;
    } else {
        for (i = 1; i < attempt && d < rp->max; i++)
            d *= 2;
        if (d > rp->max)
            d = rp->max;
        d *= 0.5 + 0.5 * u;
    }
    if (left >= 0 && d >= left)
        return -1;
    return d;
}

/* core.retry_wait(policy, attempt, retry_after, left, u) -> seconds | nil:
 * the same policy for transports driven from Lua. policy: { max_retries=,
 * base=, max=, after_max= }; retry_after and left: nil when unknown. */
static int l_retry_wait(lua_State *L)
{
    be_retry_policy rp;
    double w;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "max_retries");
    lua_getfield(L, 1, "base");
    lua_getfield(L, 1, "max");
    lua_getfield(L, 1, "after_max");
    rp.max_retries = (int)luaL_optnumber(L, -4, 2);
    rp.base = luaL_optnumber(L, -3, 0.5);
    rp.max = luaL_optnumber(L, -2, 8);
    rp.after_max = luaL_optnumber(L, -1, 60);
    w = be_retry_wait(&rp, (int)luaL_checknumber(L, 2), luaL_optnumber(L, 3, -1),
                      luaL_optnumber(L, 4, -1), luaL_optnumber(L, 5, 0.5));
    if (w < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, w);
    return 1;
}

void be_retry_open(lua_State *L)
{
    lua_pushcfunction(L, l_retry_wait);
    lua_setfield(L, -2, "retry_wait");
}
