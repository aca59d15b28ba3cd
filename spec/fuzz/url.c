/* url.c: fuzz target for the URLs the pager builds (core.pager(endpoint,
 * run_id, params):url(base)) from arbitrary endpoint names, run ids,
 * parameters and cursors.
 *
 * Input: a config byte (bits 0-2 endpoint: the six names, one read from the
 * input, or a name with a NUL and more after it; 3-4 params: none, a table, a
 * table, a string; 5 keep_nulls; 6-7 the base URL), then values read in turn: the run id,
 * the six query parameters, starting_after, ending_before and one unknown
 * parameter. A value is a tag byte (nil, a string of a length byte's bytes,
 * a number from a table of awkward ones, true, false, a table, a raw 64-bit
 * integer, or a path-like string) and its bytes.
 *
 * Bad arguments must raise a clean error: an unknown endpoint, a run id that
 * is not a string or number or is "", "." or "..", params that are not a
 * table, a parameter that is not a
 * string, boolean or whole number of at most 2^53, a cursor that is empty or
 * not a string, both cursors. Otherwise the URL is exactly the base, the
 * endpoint's path with the run id percent-encoded whole (so it is one path
 * segment), and for the paged endpoints a query holding each given known
 * parameter once, encoded, that decodes back to the value given. */

#include <errno.h>

#include "harness.h"

typedef struct reader {
    const unsigned char *p, *end;
} reader;

static unsigned next_byte(reader *r)
{
    return r->p < r->end ? *r->p++ : 0;
}

static const char *const names[6] = { "call-results", "agent-results", "agent-snapshots",
                                      "run", "runs", "status" };
static const char *const befores[6] = { "/v1/evals/runs/", "/v1/evals/runs/", "/v1/evals/runs/",
                                        "/v1/evals/runs/", "/v1/evals/runs", "/v1/evals/status" };
static const char *const afters[6] = { "/call-results", "/agent-results", "/agent-snapshots",
                                       "", "", "" };
static const int has_id[6] = { 1, 1, 1, 1, 0, 0 };
static const int paged[6] = { 1, 1, 0, 0, 1, 0 };
static const char *const bases[4] = { "https://h", "", "http://127.0.0.1:8080",
                                      "https://api.bland.ai" };

/* in the order the pager sends them; then the cursors and a key it must ignore */
#define NQUERY 6
static const char *const keys[NQUERY + 3] = {
    "include_agent_results", "limit", "eval_agent_id", "workbench_setup_id", "status",
    "triggered_by", "starting_after", "ending_before", "evil"
};

static const double numbers[16] = {
    0, 1, 100, -1, 2.5, 1e300, NAN, INFINITY, -INFINITY, 9007199254740992.0,
    9007199254740994.0, -0.0, 1e15, 0.5, -9007199254740992.0, 4294967296.0
};

static const char *const path_like[8] = { "", ".", "..", "...", "a/b", "?x=1", "#f", "%2e%2E" };

/* Pushes the next value of the input. */
static void push_value(lua_State *L, reader *r)
{
    unsigned tag = next_byte(r) & 7;
    size_t n;

    switch (tag) {
    case 0: lua_pushnil(L); break;
    case 1:
        n = next_byte(r);
        if (n > (size_t)(r->end - r->p))
            n = (size_t)(r->end - r->p);
        lua_pushlstring(L, (const char *)r->p, n);
        r->p += n;
        break;
    case 2: {
        double v = numbers[next_byte(r) & 15];
        if (v == floor(v) && fabs(v) <= 9007199254740992.0 && !(v == 0 && signbit(v)))
            lua_pushinteger(L, (lua_Integer)v);
        else
            lua_pushnumber(L, v);
        break;
    }
    case 3: lua_pushboolean(L, 1); break;
    case 4: lua_pushboolean(L, 0); break;
    case 5: lua_newtable(L); break;
    case 6: {
        uint64_t u = 0;
        int i;
        for (i = 0; i < 8; i++)
            u = u << 8 | next_byte(r);
        lua_pushinteger(L, (lua_Integer)u);
        break;
    }
    default: lua_pushstring(L, path_like[next_byte(r) & 7]); break;
    }
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexval(unsigned char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes s[0..n) into out; returns its length, or -1 when s holds a
 * byte that may not stand unencoded or a bad escape. */
static long decode_component(const char *s, size_t n, char *out)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n)
                return -1;
            hi = hexval((unsigned char)s[i + 1]);
            lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (unreserved(c))
            out[o++] = (char)c;
        else
            return -1;
    }
    return (long)o;
}

/* Whether the value at idx is one the pager must refuse for a query
 * parameter, and for a cursor. */
static int bad_param(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        double v = (double)lua_tonumber(L, idx);
        if (lua_isinteger(L, idx)) {
            lua_Integer i = lua_tointeger(L, idx);
            return i > ((lua_Integer)1 << 53) || i < -((lua_Integer)1 << 53);
        }
        return !(v == floor(v) && fabs(v) <= 9007199254740992.0);
    }
    return lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TBOOLEAN;
}

static int bad_cursor(lua_State *L, int idx)
{
    return !lua_isnil(L, idx) && (!lua_isstring(L, idx) || lua_rawlen(L, idx) == 0
                                  || lua_type(L, idx) == LUA_TNUMBER);
}

/* Whether the decoded query value v[0..n) stands for the value at idx. */
static int same_value(lua_State *L, int idx, const char *v, size_t n)
{
    char buf[64];

    if (lua_type(L, idx) == LUA_TBOOLEAN)
        return lua_toboolean(L, idx) ? n == 4 && memcmp(v, "true", 4) == 0
                                     : n == 5 && memcmp(v, "false", 5) == 0;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        char *endp;
        long long ll;
        if (n == 0 || n >= sizeof buf)
            return 0;
        memcpy(buf, v, n);
        buf[n] = '\0';
        errno = 0;
        ll = strtoll(buf, &endp, 10);
        return errno == 0 && *endp == '\0' && (double)ll == (double)lua_tonumber(L, idx);
    }
    return fuzz_streq(L, idx, v, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader rd;
    lua_State *L;
    int sel, pmode, ep = -1, expect_error = 0, i, status, cursor_key = -1;
    const char *base;
    size_t url_len, blen;
    const char *url, *q;
    char *scratch;
    int seen[NQUERY + 2] = { 0 };

    if (size == 0)
        return 0;
    rd.p = data + 1;
    rd.end = data + size;
    sel = data[0] & 7;
    pmode = (data[0] >> 3) & 3;
    base = bases[data[0] >> 6];

    L = fuzz_state();
    lua_getfield(L, 1, "pager");                             /* 2 */
    if (sel < 6) {
        ep = sel;
        lua_pushstring(L, names[ep]);                        /* 3 */
    } else if (sel == 6) {
        push_value(L, &rd);
        if (lua_type(L, -1) == LUA_TSTRING) {
            for (i = 0; i < 6; i++)
                if (fuzz_streq(L, -1, names[i], strlen(names[i])))
                    ep = i;
        }
        if (ep < 0)
            expect_error = 1;
    } else {
        lua_pushstring(L, names[next_byte(&rd) % 6]);
        lua_pushlstring(L, "\0x", 2);
        lua_concat(L, 2);
        expect_error = 1;
    }
    push_value(L, &rd);                                      /* 4: run id */
    if (ep >= 0 && has_id[ep]) {
        size_t n;
        const char *s;
        lua_pushvalue(L, 4);
        s = lua_tolstring(L, -1, &n);
        if (s == NULL || n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            expect_error = 1;
        lua_pop(L, 1);
    }
    if (pmode == 1 || pmode == 2) {
        lua_newtable(L);                                     /* 5: params */
        for (i = 0; i < NQUERY + 3; i++) {
            push_value(L, &rd);
            if (ep >= 0 && paged[ep] && i < NQUERY && !lua_isnil(L, -1) && bad_param(L, -1))
                expect_error = 1;
            if (ep >= 0 && paged[ep] && (i == NQUERY || i == NQUERY + 1) && bad_cursor(L, -1))
                expect_error = 1;
            lua_setfield(L, 5, keys[i]);
        }
        lua_getfield(L, 5, "starting_after");
        lua_getfield(L, 5, "ending_before");
        if (ep >= 0 && paged[ep]) {
            if (!lua_isnil(L, -2) && !lua_isnil(L, -1))
                expect_error = 1;
            else if (!lua_isnil(L, -2))
                cursor_key = NQUERY;
            else if (!lua_isnil(L, -1))
                cursor_key = NQUERY + 1;
        }
        lua_pop(L, 2);
    } else if (pmode == 3) {
        lua_pushliteral(L, "limit=1");                       /* params that are not a table */
        expect_error = 1;
    } else
        lua_pushnil(L);
    lua_pushboolean(L, (data[0] >> 5) & 1);                  /* 6: keep_nulls */

    lua_pushvalue(L, 2);
    for (i = 3; i <= 6; i++)
        lua_pushvalue(L, i);
    status = lua_pcall(L, 4, 1, 0);                          /* 7 */
    if (expect_error) {
        FUZZ_CHECK(status != LUA_OK, "bad arguments were accepted");
        FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING
                   && (strstr(lua_tostring(L, -1), "bad argument") != NULL
                       || strstr(lua_tostring(L, -1), "unknown endpoint") != NULL),
                   "bad arguments raised an unclear error: %s", lua_tostring(L, -1));
        lua_close(L);
        return 0;
    }
    FUZZ_CHECK(status == LUA_OK, "core.pager raised: %s", lua_tostring(L, -1));

    lua_getfield(L, 7, "cursor");
    lua_pushvalue(L, 7);
    lua_call(L, 1, 2);                                       /* 8, 9 */
    if (cursor_key >= 0) {
        lua_getfield(L, 5, keys[cursor_key]);
        lua_tostring(L, -1);
        FUZZ_CHECK(lua_rawequal(L, -1, 8), "pager:cursor() is not the cursor given");
        FUZZ_CHECK(lua_toboolean(L, 9) == (cursor_key == NQUERY + 1), "wrong direction");
        lua_pop(L, 1);
    } else
        FUZZ_CHECK(lua_isnil(L, 8), "a cursor from nowhere");
    lua_settop(L, 7);

    lua_getfield(L, 7, "url");
    lua_pushvalue(L, 7);
    lua_pushstring(L, base);
    lua_call(L, 2, 1);                                       /* 8 */
    FUZZ_CHECK(lua_type(L, 8) == LUA_TSTRING, "no URL");
    url = lua_tolstring(L, 8, &url_len);
    scratch = (char *)lua_newuserdatauv(L, url_len + 1, 0);  /* 9 */

    /* the base, then the endpoint's path: the run id one encoded segment */
    blen = strlen(base);
    FUZZ_CHECK(url_len >= blen && memcmp(url, base, blen) == 0, "the URL leaves the base: %s", url);
    url += blen;
    url_len -= blen;
    q = memchr(url, '?', url_len);
    {
        size_t plen = q != NULL ? (size_t)(q - url) : url_len, bl = strlen(befores[ep]),
               al = strlen(afters[ep]);
        FUZZ_CHECK(plen >= bl + al && memcmp(url, befores[ep], bl) == 0
                   && memcmp(url + plen - al, afters[ep], al) == 0,
                   "the path is not the endpoint's: %s", url);
        if (has_id[ep]) {
            long n = decode_component(url + bl, plen - bl - al, scratch);
            lua_pushvalue(L, 4);
            lua_tostring(L, -1);
            FUZZ_CHECK(n >= 0 && fuzz_streq(L, -1, scratch, (size_t)n),
                       "the run id is not one encoded segment: %s", url);
            lua_pop(L, 1);
        } else
            FUZZ_CHECK(plen == bl, "the path is not the endpoint's: %s", url);
    }

    /* the query: each known parameter given, once, encoded, decoding to its value */
    if (q != NULL) {
        const char *s = q + 1, *end = url + url_len;
        FUZZ_CHECK(paged[ep] && (pmode == 1 || pmode == 2), "a query on an endpoint without one");
        while (s <= end) {
            const char *amp = memchr(s, '&', (size_t)(end - s)), *eq;
            size_t n = amp != NULL ? (size_t)(amp - s) : (size_t)(end - s);
            long vlen;
            int k = -1;
            eq = memchr(s, '=', n);
            FUZZ_CHECK(eq != NULL, "a query part without '=': %s", url);
            for (i = 0; i < NQUERY + 2; i++)
                if ((size_t)(eq - s) == strlen(keys[i]) && memcmp(s, keys[i], (size_t)(eq - s)) == 0)
                    k = i;
            FUZZ_CHECK(k >= 0, "an unknown query key: %s", url);
            FUZZ_CHECK(!seen[k], "a query key twice: %s", url);
            seen[k] = 1;
            vlen = decode_component(eq + 1, n - (size_t)(eq + 1 - s), scratch);
            FUZZ_CHECK(vlen >= 0, "a value not encoded whole: %s", url);
            lua_getfield(L, 5, keys[k]);
            FUZZ_CHECK(same_value(L, -1, scratch, (size_t)vlen), "%s is not the value given: %s",
                       keys[k], url);
            lua_pop(L, 1);
            if (amp == NULL)
                break;
            s = amp + 1;
        }
    }
    if (paged[ep] && (pmode == 1 || pmode == 2)) {
        for (i = 0; i < NQUERY + 2; i++) {
            lua_getfield(L, 5, keys[i]);
            if (i < NQUERY)
                FUZZ_CHECK(seen[i] == !lua_isnil(L, -1), "parameter %s is lost: %s", keys[i], url);
            else
                FUZZ_CHECK(seen[i] == (cursor_key == i), "cursor %s is wrong: %s", keys[i], url);
            lua_pop(L, 1);
        }
    }
    lua_close(L);
    return 0;
}
