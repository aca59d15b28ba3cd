/* batch.c: several transfers of one client in flight together, on the
 * client's multi handle (so on its connections), each in a slot with its own
 * easy handle. The scheduling, the retries and the paging of many runs are
 * blandeval.many's (Lua); a batch only starts pages, waits for the first to
 * end and reads it with the run's pager.
 *   b = client:_batch(n)        n slots
 *   b:start(i, pager)           the pager's next page into slot i
 *   b:wait(seconds)             -> the index of a slot whose transfer ended,
 *                                  or nil when none did within the time
 *   b:response(i, pager [, seen]) -> page | nil, err, retry_after
 *   b:abort(i), b:close()                                                    */

#include <stdlib.h>
#include <string.h>

#include "blandeval.h"

#define BE_BATCH_MT "blandeval.batch"

typedef struct be_batch {
    be_client *client;            /* NULL once detached; kept alive by the user value */
    struct be_batch *next;        /* in the client's list of open batches */
    be_http *slots;
    int n;
} be_batch;

/* Frees the slots' handles and leaves the client's list: before the client
 * frees its multi handle, and when the batch is closed or collected. */
void be_batch_detach(be_batch *b)
{
    be_client *c = b->client;
    int i;

    if (c == NULL)
        return;
    for (i = 0; i < b->n; i++)
        be_http_free(&b->slots[i]);
    free(b->slots);
    b->slots = NULL;
    b->n = 0;
    if (c->batches == b) {
        c->batches = b->next;
    } else {
        be_batch *p;
        for (p = c->batches; p != NULL && p->next != b; p = p->next)
            ;
        if (p != NULL)
            p->next = b->next;
    }
    b->client = NULL;
    b->next = NULL;
}

static be_batch *check_batch(lua_State *L)
{
    be_batch *b = (be_batch *)luaL_checkudata(L, 1, BE_BATCH_MT);
    if (b->client == NULL || b->client->closed)
        luaL_error(L, "blandeval: the client is closed");
    return b;
}

static be_http *check_slot(lua_State *L, be_batch *b)
{
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_argcheck(L, i >= 1 && i <= b->n, 2, "no such slot");
    return &b->slots[i - 1];
}

/* client:_batch(n) */
int be_client_batch(lua_State *L)
{
    be_client *c = be_check_client(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    be_batch *b;
    int i;

    luaL_argcheck(L, n >= 1 && n <= 64, 2, "from 1 to 64 slots");
    b = (be_batch *)be_newuserdata_uv(L, sizeof *b);
    memset(b, 0, sizeof *b);
    luaL_getmetatable(L, BE_BATCH_MT);
    lua_setmetatable(L, -2);
    lua_createtable(L, 1, 0);                /* the client lives as long as the batch (a */
    lua_pushvalue(L, 1);                     /* table: LuaJIT's environments must be one) */
    lua_rawseti(L, -2, 1);
    be_setuservalue(L, -2);
    b->client = c;
    b->next = c->batches;
    c->batches = b;
    b->slots = (be_http *)calloc((size_t)n, sizeof *b->slots);
    if (b->slots == NULL)
        return luaL_error(L, "blandeval: out of memory");
    for (i = 0; i < (int)n; i++) {
        b->n = i + 1;                        /* what be_batch_detach frees */
        if (!be_client_handle(c, &b->slots[i]))
            return luaL_error(L, "blandeval: cannot set up the transfer (out of memory)");
    }
    return 1;
}

/* b:start(i, pager [, left]) -> true | false (could not start: out of memory).
 * left: seconds left of the page's deadline, which cut the attempt's timeout. */
static int batch_start(lua_State *L)
{
    be_batch *b = check_batch(L);
    be_http *h = check_slot(L, b);
    be_pager *p = (be_pager *)luaL_checkudata(L, 3, BE_PAGER_MT);
    double timeout = b->client->timeout, left = luaL_optnumber(L, 4, -1);
    int ok;

    if (left >= 0 && left < timeout)
        timeout = left;
    be_pager_push_url(L, p, b->client->base_url);
    ok = be_http_start(h, lua_tostring(L, -1), (long)(timeout * 1000) + 1, b);
    lua_pushboolean(L, ok);
    return 1;
}

/* b:wait(seconds) -> i | nil */
static int batch_wait(lua_State *L)
{
    be_batch *b = check_batch(L);
    double until = be_now() + luaL_checknumber(L, 2);

    for (;;) {
        be_http *any = NULL;
        double left;
        int i;

        for (i = 0; i < b->n; i++) {
            be_http *h = &b->slots[i];
            if (h->in_flight && h->done) {
                be_pushint(L, i + 1);
                return 1;
            }
            if (h->in_flight)
                any = h;
        }
        left = until - be_now();
        if (any == NULL) {                   /* nothing to wait for: only time */
            be_sleep(left);
            return 0;
        }
        be_http_pump(any);                   /* drives every transfer of the multi */
        for (i = 0; i < b->n; i++)
            if (b->slots[i].in_flight && b->slots[i].done)
                break;
        if (i < b->n)
            continue;
        if (left <= 0)
            return 0;
        be_multi_poll(any->multi, left < 1 ? (long)(left * 1000) + 1 : 1000);
    }
}

/* b:response(i, pager [, seen]) -> page | nil, err, retry_after */
static int batch_response(lua_State *L)
{
    be_batch *b = check_batch(L);
    be_http *h = check_slot(L, b);
    be_pager *p = (be_pager *)luaL_checkudata(L, 3, BE_PAGER_MT);
    CURLcode rc;
    int ok;

    lua_settop(L, 4);
    if (!h->in_flight)
        return luaL_error(L, "blandeval: slot %d has no transfer", (int)lua_tointeger(L, 2));
    rc = be_http_finish(h, 0);
    if (rc != CURLE_OK) {
        be_push_transfer_error(L, b->client, h, rc);
        ok = 0;
    } else
        ok = be_pager_response(L, p, h, lua_istable(L, 4) ? 4 : 0, b->client->secret);
    if (ok)
        return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    if (h->retry_after >= 0)
        lua_pushnumber(L, h->retry_after);
    else
        lua_pushnil(L);
    return 3;
}

static int batch_abort(lua_State *L)
{
    be_batch *b = check_batch(L);
    be_http_abort(check_slot(L, b));
    return 0;
}

static int batch_close(lua_State *L)
{
    be_batch_detach((be_batch *)luaL_checkudata(L, 1, BE_BATCH_MT));
    return 0;
}

static const luaL_Reg batch_methods[] = {
    { "start", batch_start },
    { "wait", batch_wait },
    { "response", batch_response },
    { "abort", batch_abort },
    { "close", batch_close },
    { NULL, NULL }
};

void be_batch_open(lua_State *L)
{
    be_new_class(L, BE_BATCH_MT, batch_methods, batch_close, batch_close);
    lua_pop(L, 1);
}
