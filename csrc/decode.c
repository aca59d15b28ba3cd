/* decode.c: JSON text (RFC 8259) to Lua values in one pass.
 *
 * No recursion: an explicit stack of frames, one per open array or object, so
 * deep input can exhaust only max_depth, never the C stack. A container's
 * elements wait on the Lua stack until it closes; then the table is created at
 * its exact size and filled, so no table is ever rehashed while it grows. When
 * the pending elements would take too many Lua stack slots (LuaJIT allows 8000
 * per C call), the innermost container is "flushed": its table is created early
 * and later elements go straight into it.
 *
 * Strings without escapes are pushed straight from the input. All memory the
 * decoder uses (frames deeper than the inline ones, the unescape buffer) is Lua
 * userdata, so an out-of-memory error thrown by the Lua API leaks nothing. */

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "blandeval.h"

/* Pending values an open container may keep on the Lua stack before the
 * innermost one is flushed, and the slots reserved per lua_checkstack call. */
#define PENDING_LIMIT 4000
#define STACK_CHUNK 64
#define INLINE_FRAMES 32
#define INLINE_BUF 512

typedef struct frame {
    int base;                 /* stack slot of the table, or of the first pending value */
    unsigned char object;     /* 1: object (pending key/value pairs), 0: array */
    unsigned char flushed;    /* the table exists at base; new elements go into it */
    unsigned char had_null;   /* array held a null: record its length as field n */
    lua_Integer count;        /* elements so far (pairs pending, for unflushed objects) */
} frame;

typedef struct dec {
    lua_State *L;
    const unsigned char *start, *end;
    frame *frames;            /* inline_frames, or a userdata in frames_slot */
    int depth, frames_cap;
    int frames_slot, scratch_slot;
    unsigned char *scratch;   /* unescape buffer: inline_buf, or a userdata in scratch_slot */
    size_t scratch_cap;
    int room;                 /* stack slots known to be free above the top */
    int values_base;          /* stack slot below the first value */
    int keep_nulls, max_depth;
    const unsigned char *err_at;
    const char *err;
    int err_found;
    frame inline_frames[INLINE_FRAMES];
    unsigned char inline_buf[INLINE_BUF];
} dec;

/* Bytes a string scan must stop at: '"', '\\', control characters, and every
 * byte >= 0x80 (the start of a UTF-8 sequence to validate). */
static const unsigned char str_stop[256] = {
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
};

#define IS_WS(c) ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')
#define IS_DIGIT(c) ((unsigned)((c) - '0') < 10u)

static const unsigned char *skip_ws(const unsigned char *p)
{
    while (IS_WS(*p))
        p++;
    return p;
}

/* Records why decoding stops at byte at; the message names what was found
 * there, unless fail_plain says the byte itself is not the problem. */
static int fail(dec *d, const unsigned char *at, const char *what)
{
    d->err_at = at;
    d->err = what;
    d->err_found = at < d->end;
    return 0;
}

static int fail_plain(dec *d, const unsigned char *at, const char *what)
{
    fail(d, at, what);
    d->err_found = 0;
    return 0;
}

/* ---- Lua stack discipline ------------------------------------------------ */

/* Converts an unflushed container's pending values into its table, left at
 * f->base. Objects are filled first pair first, so a duplicate key's last
 * value wins. */
static void flush(dec *d, frame *f)
{
    lua_State *L = d->L;
    lua_Integer i, n = f->count;

    if (f->object) {
        lua_createtable(L, 0, (int)n);
        for (i = 0; i < n; i++) {
            lua_pushvalue(L, f->base + (int)(2 * i));
            lua_pushvalue(L, f->base + (int)(2 * i) + 1);
            lua_rawset(L, -3);
        }
        if (n > 0) {
            lua_replace(L, f->base);
            lua_settop(L, f->base);
        }
    } else {
        lua_createtable(L, (int)n, f->had_null);
        if (n > 0) {
            lua_insert(L, f->base);
            for (i = n; i > 0; i--)
                lua_rawseti(L, f->base, i);
        }
    }
    f->flushed = 1;
}

/* Makes room for n more values. Too many pending values flush the innermost
 * container, which is always at an element boundary when this is called; the
 * flush itself needs 3 slots. */
static int ensure(dec *d, int n)
{
    lua_State *L = d->L;
    int want = STACK_CHUNK + n;

    if (lua_gettop(L) - d->values_base > PENDING_LIMIT || !lua_checkstack(L, want)) {
        frame *f = d->depth > 0 ? &d->frames[d->depth - 1] : NULL;
        if (f != NULL && !f->flushed && f->count > 0 && lua_checkstack(L, 3))
            flush(d, f);
        if (!lua_checkstack(L, want))
            return 0;
    }
    d->room = want;
    return 1;
}

/* Reserves n stack slots for the values about to be pushed. */
static int need(dec *d, int n, const unsigned char *at)
{
    if (d->room < n && !ensure(d, n))
        return fail_plain(d, at, "nesting too deep for the Lua stack");
    d->room -= n;
    return 1;
}

/* Frames beyond the inline ones live in a userdata kept in frames_slot. */
static void grow_frames(dec *d)
{
    int cap = d->frames_cap * 2;
    frame *nf;

    if (cap > d->max_depth)
        cap = d->max_depth;
    nf = (frame *)be_newuserdata(d->L, (size_t)cap * sizeof(frame));
    memcpy(nf, d->frames, (size_t)d->depth * sizeof(frame));
    lua_replace(d->L, d->frames_slot);
    d->frames = nf;
    d->frames_cap = cap;
}

/* ---- strings ------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence starting at p (p[0] >= 0x80), or 0 with
 * *bad pointing at the first byte that cannot continue a valid sequence. The
 * ranges are those of Unicode's table 3-7: no overlongs, no surrogates, no
 * code point above U+10FFFF. The NUL after the input stops every sequence. */
static int utf8_len(const unsigned char *p, const unsigned char **bad)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    int n, i;

    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
    } else {
        *bad = p;
        return 0;
    }
    if (p[1] < lo || p[1] > hi) {
        *bad = p + 1;
        return 0;
    }
    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            *bad = p + i;
            return 0;
        }
    }
    return n;
}

static int hex4(const unsigned char *p, unsigned *out, const unsigned char **bad)
{
    unsigned v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        unsigned c = p[i], x;
        if (IS_DIGIT(c)) x = c - '0';
        else if (c >= 'a' && c <= 'f') x = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') x = c - 'A' + 10;
        else {
            *bad = p + i;
            return 0;
        }
        v = v * 16 + x;
    }
    *out = v;
    return 1;
}

/* Makes the unescape buffer hold at least need bytes, keeping len of them. */
static void reserve_scratch(dec *d, size_t len, size_t need)
{
    size_t cap = d->scratch_cap;
    unsigned char *nb;

    if (need <= cap)
        return;
    while (cap < need)
        cap *= 2;
    nb = (unsigned char *)be_newuserdata(d->L, cap);
    memcpy(nb, d->scratch, len);
    lua_replace(d->L, d->scratch_slot);
    d->scratch = nb;
    d->scratch_cap = cap;
}

static size_t put_utf8(unsigned char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    } else if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    } else if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Finishes a string from its first backslash at p, having already seen the
 * plain bytes [s, p). Unescapes into the scratch buffer and pushes the result.
 * Returns the byte after the closing quote, or NULL on bad input. */
static const unsigned char *string_escaped(dec *d, const unsigned char *s,
                                           const unsigned char *p)
{
    size_t len = (size_t)(p - s);
    const unsigned char *bad;

    reserve_scratch(d, 0, len + 16);
    memcpy(d->scratch, s, len);
    for (;;) {
        const unsigned char *run = p;
        unsigned c;

        while (!str_stop[*p])
            p++;
        while (*p >= 0x80) {
            int n = utf8_len(p, &bad);
            if (n == 0) {
                fail(d, bad, bad < d->end ? "invalid UTF-8 in string"
                                          : "unexpected end of input");
                return NULL;
            }
            p += n;
            while (!str_stop[*p])
                p++;
        }
        /* [run, p) is plain; 4 more bytes hold any one escape's output */
        reserve_scratch(d, len, len + (size_t)(p - run) + 4);
        memcpy(d->scratch + len, run, (size_t)(p - run));
        len += (size_t)(p - run);
        c = *p;
        if (c == '"')
            break;
        if (c != '\\') {
            if (p >= d->end)
                fail(d, p, "unexpected end of input");
            else
                fail(d, p, "control character in string");
            return NULL;
        }
        c = p[1];
        switch (c) {
        case '"': case '\\': case '/': d->scratch[len++] = (unsigned char)c; p += 2; break;
        case 'b': d->scratch[len++] = '\b'; p += 2; break;
        case 'f': d->scratch[len++] = '\f'; p += 2; break;
        case 'n': d->scratch[len++] = '\n'; p += 2; break;
        case 'r': d->scratch[len++] = '\r'; p += 2; break;
        case 't': d->scratch[len++] = '\t'; p += 2; break;
        case 'u': {
            unsigned cp, lo;
            if (!hex4(p + 2, &cp, &bad)) {
                fail(d, bad, bad < d->end ? "invalid \\u escape" : "unexpected end of input");
                return NULL;
            }
            p += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* a high surrogate pairs with an immediately following low one;
                 * alone, like a lone low surrogate, it becomes U+FFFD */
                if (p[0] == '\\' && p[1] == 'u' && hex4(p + 2, &lo, &bad)
                    && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                } else
                    cp = 0xFFFD;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF)
                cp = 0xFFFD;
            len += put_utf8(d->scratch + len, cp);
            break;
        }
        default:
            fail(d, p + 1, p + 1 < d->end ? "invalid escape" : "unexpected end of input");
            return NULL;
        }
    }
    lua_pushlstring(d->L, (const char *)d->scratch, len);
    return p + 1;
}

/* Parses the string whose opening quote is at p[-1] and pushes it. */
static const unsigned char *string(dec *d, const unsigned char *p)
{
    const unsigned char *s = p, *bad;

    for (;;) {
        while (!str_stop[*p])
            p++;
        if (*p == '"') {
            lua_pushlstring(d->L, (const char *)s, (size_t)(p - s));
            return p + 1;
        }
        if (*p == '\\')
            return string_escaped(d, s, p);
        if (*p < 0x80) {
            fail(d, p, p >= d->end ? "unexpected end of input" : "control character in string");
            return NULL;
        }
        {
            int n = utf8_len(p, &bad);
            if (n == 0) {
                fail(d, bad, bad < d->end ? "invalid UTF-8 in string" : "unexpected end of input");
                return NULL;
            }
            p += n;
        }
    }
}

/* ---- numbers ------------------------------------------------------------- */

/* Exact powers of ten: a double holds 10^k exactly up to k = 22. */
static const double pow10_exact[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* Text the fast paths cannot convert exactly goes through the VM's own
 * conversion: correctly rounded, and deaf to the C locale's decimal point. */
static int number_slow(dec *d, const unsigned char *s, const unsigned char *p)
{
    lua_State *L = d->L;
    lua_Number v;

    lua_pushlstring(L, (const char *)s, (size_t)(p - s));
#if LUA_VERSION_NUM >= 503
    if (lua_stringtonumber(L, lua_tostring(L, -1)) == 0)
        return fail(d, s, "invalid number");
    lua_remove(L, -2);
    if (lua_isinteger(L, -1))
        return 1;
    v = lua_tonumber(L, -1);
#else
    v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    lua_pushnumber(L, v);
#endif
    if (v == HUGE_VAL || v == -HUGE_VAL) {
        lua_pop(L, 1);
        return fail_plain(d, s, "number out of range");
    }
    return 1;
}

/* Parses the number starting at p and pushes it. Integral literals that fit
 * int64 become integers on Lua 5.3+. Fractions go through Clinger's fast path
 * (a mantissa below 2^53 times an exact power of ten is one correctly rounded
 * operation) and otherwise through number_slow. */
static const unsigned char *number(dec *d, const unsigned char *p)
{
    const unsigned char *s = p;
    uint64_t m = 0;
    int neg = 0, nd = 0, frac = 0, exp10 = 0, integral = 1;

    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (*p == '0') {
        p++;
    } else if (IS_DIGIT(*p)) {
        do {
            if (nd < 19) m = m * 10 + (unsigned)(*p - '0');
            nd++;
            p++;
        } while (IS_DIGIT(*p));
    } else {
        fail(d, p, p >= d->end ? "unexpected end of input" : "invalid number");
        return NULL;
    }
    if (*p == '.') {
        p++;
        if (!IS_DIGIT(*p)) {
            fail(d, p, p >= d->end ? "unexpected end of input" : "invalid number");
            return NULL;
        }
        integral = 0;
        do {
            /* leading zeros only scale; other digits count toward the 19 that
             * fit m, and past those the slow path takes over */
            if (m == 0 && *p == '0') {
                if (frac < 400) frac++; else nd = 20;
            } else {
                if (nd < 19) {
                    m = m * 10 + (unsigned)(*p - '0');
                    frac++;
                }
                nd++;
            }
            p++;
        } while (IS_DIGIT(*p));
    }
    if (*p == 'e' || *p == 'E') {
        int e = 0, eneg = 0;
        p++;
        if (*p == '+' || *p == '-')
            eneg = *p++ == '-';
        if (!IS_DIGIT(*p)) {
            fail(d, p, p >= d->end ? "unexpected end of input" : "invalid number");
            return NULL;
        }
        integral = 0;
        do {
            if (e < 10000) e = e * 10 + (*p - '0');
            p++;
        } while (IS_DIGIT(*p));
        exp10 = eneg ? -e : e;
    }
    if (nd > 19)
        return number_slow(d, s, p) ? p : NULL;
    if (integral) {
        if (m == 0 && neg)
            lua_pushnumber(d->L, -0.0);
        else if (!neg && m <= (uint64_t)INT64_MAX)
            be_pushint(d->L, (int64_t)m);
        else if (neg && m <= (uint64_t)INT64_MAX + 1)
            be_pushint(d->L, (int64_t)(0 - m));
        else        /* 19 digits beyond int64: one correctly rounded conversion */
            lua_pushnumber(d->L, neg ? -(lua_Number)m : (lua_Number)m);
        return p;
    }
    exp10 -= frac;
#if FLT_EVAL_METHOD == 0
    if (m <= ((uint64_t)1 << 53) && exp10 >= -22 && exp10 <= 22) {
        double v = (double)m;
        v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
        lua_pushnumber(d->L, neg ? -v : v);
        return p;
    }
#endif
    return number_slow(d, s, p) ? p : NULL;
}

/* ---- the parser ---------------------------------------------------------- */

static int literal(dec *d, const unsigned char *p, const char *word, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != (unsigned char)word[i])
            return fail(d, p + i, p + i >= d->end ? "unexpected end of input"
                                                  : "unexpected character");
    return 1;
}

/* Closes the innermost container, leaving its table at its base. */
static void close_container(dec *d)
{
    frame *f = &d->frames[d->depth - 1];
    lua_State *L = d->L;

    if (!f->flushed)
        flush(d, f);
    if (!f->object && f->had_null) {
        lua_pushliteral(L, "n");
        be_pushint(L, f->count);
        lua_rawset(L, f->base);
    }
    d->depth--;
}

static int open_container(dec *d, const unsigned char *at, int object)
{
    frame *f;

    if (d->depth >= d->max_depth)
        return fail_plain(d, at, "nesting deeper than max_depth");
    if (d->depth == d->frames_cap)
        grow_frames(d);
    f = &d->frames[d->depth++];
    f->base = lua_gettop(d->L) + 1;
    f->object = (unsigned char)object;
    f->flushed = 0;
    f->had_null = 0;
    f->count = 0;
    return 1;
}

/* Reads one object key (p at its quote), the ':' after it, and leaves p at
 * the member's value. */
static const unsigned char *member_key(dec *d, const unsigned char *p)
{
    if (!need(d, 3, p))
        return NULL;
    if (*p != '"') {
        fail(d, p, p >= d->end ? "unexpected end of input" : "expected string key");
        return NULL;
    }
    p = string(d, p + 1);
    if (p == NULL)
        return NULL;
    p = skip_ws(p);
    if (*p != ':') {
        fail(d, p, p >= d->end ? "unexpected end of input" : "expected ':'");
        return NULL;
    }
    return skip_ws(p + 1);
}

static int parse(dec *d, const unsigned char *p)
{
    lua_State *L = d->L;
    frame *f;
    int pushed;

value:
    p = skip_ws(p);
    pushed = 1;
    switch (*p) {
    case '{':
        if (!open_container(d, p, 1))
            return 0;
        p = skip_ws(p + 1);
        if (*p == '}') {
            p++;
            goto close;
        }
        p = member_key(d, p);
        if (p == NULL)
            return 0;
        goto value;
    case '[':
        if (!open_container(d, p, 0))
            return 0;
        p = skip_ws(p + 1);
        if (*p == ']') {
            p++;
            goto close;
        }
        if (!need(d, 2, p))
            return 0;
        goto value;
    case '"':
        p = string(d, p + 1);
        if (p == NULL)
            return 0;
        break;
    case 't':
        if (!literal(d, p, "true", 4))
            return 0;
        lua_pushboolean(L, 1);
        p += 4;
        break;
    case 'f':
        if (!literal(d, p, "false", 5))
            return 0;
        lua_pushboolean(L, 0);
        p += 5;
        break;
    case 'n':
        if (!literal(d, p, "null", 4))
            return 0;
        p += 4;
        if (d->keep_nulls || d->depth == 0) {
            lua_pushlightuserdata(L, NULL);
        } else if (d->frames[d->depth - 1].object) {
            lua_pop(L, 1);                   /* the member is left out: drop its key */
            pushed = 0;
        } else {
            lua_pushnil(L);
            d->frames[d->depth - 1].had_null = 1;
        }
        break;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        p = number(d, p);
        if (p == NULL)
            return 0;
        break;
    default:
        return fail(d, p, p >= d->end ? "unexpected end of input" : "unexpected character");
    }

next:
    /* a value is complete; it belongs to the innermost container, if any */
    if (d->depth == 0)
        goto done;
    f = &d->frames[d->depth - 1];
    if (pushed) {
        f->count++;
        if (f->flushed) {
            if (f->object)
                lua_rawset(L, f->base);
            else
                lua_rawseti(L, f->base, f->count);
        }
    }
    p = skip_ws(p);
    if (f->object) {
        if (*p == ',') {
            p = member_key(d, skip_ws(p + 1));
            if (p == NULL)
                return 0;
            goto value;
        }
        if (*p == '}') {
            p++;
            goto close;
        }
        return fail(d, p, p >= d->end ? "unexpected end of input" : "expected ',' or '}'");
    }
    if (*p == ',') {
        if (!need(d, 2, p))
            return 0;
        p++;
        goto value;
    }
    if (*p == ']') {
        p++;
        goto close;
    }
    return fail(d, p, p >= d->end ? "unexpected end of input" : "expected ',' or ']'");

close:
    if (!need(d, 3, p))
        return 0;
    close_container(d);
    pushed = 1;
    goto next;

done:
    p = skip_ws(p);
    if (p < d->end)
        return fail(d, p, "trailing characters after value");
    return 1;
}

/* Formats the error: the problem, what was found, and the offset. */
static void describe(const dec *d, be_decode_error *err)
{
    const unsigned char *at = d->err_at;
    char found[32] = "";
    const char *what = d->err;

    err->offset = (size_t)(at - d->start);
    if (d->err_found) {
        const char *lead = strncmp(what, "expected", 8) == 0 ? " but found" : "";
        if (strcmp(what, "unexpected character") == 0 && (*at < 0x21 || *at >= 0x7F)) {
            what = "unexpected byte";
            snprintf(found, sizeof found, " 0x%02x", *at);
        } else if (*at >= 0x21 && *at < 0x7F && *at != '\'' && strstr(what, "UTF-8") == NULL)
            snprintf(found, sizeof found, "%s '%c'", lead, *at);
        else
            snprintf(found, sizeof found, "%s byte 0x%02x", lead, *at);
    }
    if (strcmp(what, "nesting deeper than max_depth") == 0)
        snprintf(found, sizeof found, " (%d)", d->max_depth);
    snprintf(err->message, sizeof err->message, "%s%s at offset %lu",
             what, found, (unsigned long)err->offset);
}

int be_decode(lua_State *L, const char *buf, size_t len,
              const be_decode_opts *opts, be_decode_error *err)
{
    dec d;
    const unsigned char *p = (const unsigned char *)buf;
    int top = lua_gettop(L);

    d.L = L;
    d.start = p;
    d.end = p + len;
    d.err = NULL;
    d.err_at = p;
    if (len > opts->max_size) {
        err->offset = opts->max_size;
        snprintf(err->message, sizeof err->message,
                 "input larger than max_size (%lu bytes) at offset %lu",
                 (unsigned long)opts->max_size, (unsigned long)opts->max_size);
        return 0;
    }
    if (!lua_checkstack(L, STACK_CHUNK + 2))
        luaL_error(L, "blandeval: Lua stack exhausted");
    lua_pushnil(L);                          /* frames_slot */
    lua_pushnil(L);                          /* scratch_slot */
    d.frames_slot = top + 1;
    d.scratch_slot = top + 2;
    d.values_base = top + 2;
    d.room = STACK_CHUNK;
    d.frames = d.inline_frames;
    d.frames_cap = INLINE_FRAMES;
    d.depth = 0;
    d.scratch = d.inline_buf;
    d.scratch_cap = INLINE_BUF;
    d.keep_nulls = opts->keep_nulls;
    d.max_depth = opts->max_depth;

    /* RFC 8259 lets a parser skip a UTF-8 byte order mark */
    if (len >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF)
        p += 3;
    if (!parse(&d, p)) {
        describe(&d, err);
        lua_settop(L, top);
        return 0;
    }
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return 1;
}
