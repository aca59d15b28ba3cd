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
#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#endif

#include "blandeval.h"

/* Pending values the open containers may keep on the Lua stack before the
 * innermost one is flushed, and the slots reserved per lua_checkstack call.
 * Besides them each open level holds at most two slots (its table and a key),
 * so LIMIT + 2 * BE_MAX_DEPTH stays within the VM's stack: LuaJIT allows 8000
 * slots to one C call, Lua 5.4 a million. */
#if LUA_VERSION_NUM >= 502
#define PENDING_LIMIT 4000
#else
#define PENDING_LIMIT 2000
#endif
#define STACK_CHUNK 64
#define INLINE_FRAMES 32
#define INLINE_BUF 512

/* Short strings (Lua interns up to 40 bytes, hashing every byte) repeat a lot
 * in API pages: every key, and values such as ids, enums and timestamps. A
 * small direct-mapped cache of the strings already pushed saves most of that
 * hashing; inputs too small to repay clearing it skip it. Keys and values have
 * a half each, so that the ids of a page do not push its keys out. */
#define SCACHE_SIZE 256           /* entries per half */
#define SCACHE_MAX_LEN 40
#define SCACHE_MIN_INPUT 4096

typedef struct scache_entry {
    const unsigned char *src;   /* the string's bytes in the input; NULL: empty */
    size_t len;
} scache_entry;

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
    int frames_slot, scratch_slot, scache_slot;
    int use_scache;
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
    scache_entry scache[2 * SCACHE_SIZE];
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

/* Makes room for n more values (and STACK_CHUNK beyond, so that this runs
 * once per few dozen values). */
static int ensure(dec *d, int n)
{
    if (!lua_checkstack(d->L, STACK_CHUNK + n))
        return 0;
    d->room = STACK_CHUNK + n;
    return 1;
}

/* Reserves n stack slots for the values about to be pushed. The limits make
 * running out impossible short of memory, so failing raises. */
static inline void need(dec *d, int n)
{
    if (BE_UNLIKELY(d->room < n) && !ensure(d, n))
        luaL_error(d->L, "blandeval.decode: Lua stack exhausted");
    d->room -= n;
}

/* Called whenever container f has just taken a complete element: when the
 * values waiting on the stack are too many, f (the innermost container, and at
 * an element boundary) moves its elements into its table now. */
static void relieve(dec *d, frame *f)
{
    if (lua_gettop(d->L) - d->values_base > PENDING_LIMIT && lua_checkstack(d->L, 3))
        flush(d, f);
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

/* Skips bytes that need no attention in a string, eight at a time while
 * eight remain before the end, then one at a time (the NUL after the input
 * stops that loop). In a word with a hit, the lowest flagged byte is exact:
 * the borrows of the zero-byte test only ever flag bytes above a true hit. */
static inline const unsigned char *scan_plain(const unsigned char *p,
                                              const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;

#if defined(__SSE2__) && defined(__GNUC__)
    /* sixteen at a time: one signed compare flags both the control bytes and
     * the bytes >= 0x80 (negative as signed chars) */
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        int hit = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                              _mm_cmpeq_epi8(v, bslash)),
                                                 _mm_cmplt_epi8(v, space)));
        if (hit)
            return p + __builtin_ctz((unsigned)hit);
        p += 16;
    }
#endif
    while (end - p >= 8) {
        uint64_t v, q, b, hit;
        memcpy(&v, p, 8);
        q = v ^ (ones * '"');
        b = v ^ (ones * '\\');
        hit = (((v - ones * 0x20) & ~v)      /* a byte below 0x20 */
             | ((q - ones) & ~q)             /* a quote */
             | ((b - ones) & ~b)             /* a backslash */
             | v) & highs;                   /* a byte >= 0x80 */
        if (hit) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return p + (__builtin_ctzll(hit) >> 3);
#else
            break;
#endif
        }
        p += 8;
    }
    while (!str_stop[*p])
        p++;
    return p;
}

/* memcmp for the short strings of the cache, without the call. */
static inline int same_bytes(const unsigned char *a, const unsigned char *b, size_t len)
{
    uint64_t x, y;
    size_t i;

    if (len < 8) {
        for (i = 0; i < len; i++)
            if (a[i] != b[i])
                return 0;
        return 1;
    }
    for (i = 0; i + 8 < len; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            return 0;
    }
    memcpy(&x, a + len - 8, 8);
    memcpy(&y, b + len - 8, 8);
    return x == y;
}

static inline unsigned scache_hash(const unsigned char *s, size_t len)
{
    uint64_t a = 0, b = 0;

    if (len >= 8) {
        memcpy(&a, s, 8);
        memcpy(&b, s + len - 8, 8);
    } else
        memcpy(&a, s, len);
    a ^= (b + len) * 0x9E3779B97F4A7C15u;
    return (unsigned)((a * 0x9E3779B97F4A7C15u) >> 56) & (SCACHE_SIZE - 1);
}

/* Pushes the string [s, s+len), from the cache when it was seen before;
 * half: 0 for keys, SCACHE_SIZE for values. */
static inline void push_string(dec *d, const unsigned char *s, size_t len, unsigned half)
{
    lua_State *L = d->L;
    scache_entry *e;
    unsigned h;

    if (!d->use_scache || len > SCACHE_MAX_LEN) {
        lua_pushlstring(L, (const char *)s, len);
        return;
    }
    h = half + scache_hash(s, len);
    e = &d->scache[h];
    if (e->len == len && e->src != NULL && same_bytes(e->src, s, len)) {
        lua_rawgeti(L, d->scache_slot, (int)h + 1);
        return;
    }
    lua_pushlstring(L, (const char *)s, len);
    lua_pushvalue(L, -1);
    lua_rawseti(L, d->scache_slot, (int)h + 1);
    e->src = s;
    e->len = len;
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

        p = scan_plain(p, d->end);
        while (*p >= 0x80) {
            int n = utf8_len(p, &bad);
            if (n == 0) {
                fail(d, bad, bad < d->end ? "invalid UTF-8 in string"
                                          : "unexpected end of input");
                return NULL;
            }
            p += n;
            p = scan_plain(p, d->end);
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

/* Parses the string whose opening quote is at p[-1] and pushes it (half: see
 * push_string). */
static const unsigned char *string(dec *d, const unsigned char *p, unsigned half)
{
    const unsigned char *s = p, *bad;

    for (;;) {
        p = scan_plain(p, d->end);
        if (*p == '"') {
            push_string(d, s, (size_t)(p - s), half);
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
 * conversion, correctly rounded: n bytes at s, digits and an exponent with no
 * decimal point, so that no C locale can read it differently. */
static int number_vm(dec *d, const char *s, size_t n, const unsigned char *at)
{
    lua_State *L = d->L;

    lua_pushlstring(L, s, n);
#if LUA_VERSION_NUM >= 503
    if (lua_stringtonumber(L, lua_tostring(L, -1)) == 0) {
        lua_pop(L, 1);
        return fail_plain(d, at, "invalid number");
    }
    lua_remove(L, -2);
#else
    {
        lua_Number v = lua_tonumber(L, -1);
        if (v == 0 && !lua_isnumber(L, -1)) {
            lua_pop(L, 1);
            return fail_plain(d, at, "invalid number");
        }
        lua_pop(L, 1);
        lua_pushnumber(L, v);
    }
#endif
    return 1;
}

/* Number text, scanned once: the first 19 significant digits in m, and where
 * the first significant digit stands, so that the magnitude is known exactly
 * before any conversion. */
typedef struct numscan {
    uint64_t m;
    int64_t nd;         /* significant digits (past 19 they are not in m) */
    int64_t folded;     /* fraction digits folded into m, leading zeros included */
    int64_t pos;        /* value = 0.d1d2d3... x 10^pos, once e is added */
    int64_t e;          /* the exponent, saturated far beyond any input length */
    int neg, integral;
} numscan;

#define EXP_SATURATE ((int64_t)400000000000000000)

/* Significant digits kept for the VM: 767 decide the rounding of any double;
 * past them one sticky digit says whether anything nonzero was dropped. */
#define KEEP_DIGITS 780

/* Rewrites the number as [-]DIGITSe<exp> (at most KEEP_DIGITS + 1 digits) and
 * converts that: the VM's scanners refuse a million digits or an exponent
 * past 2^20, and strtod reads a '.' by the locale. */
static int number_normalized(dec *d, const unsigned char *s, const unsigned char *p,
                             const numscan *n)
{
    size_t len = 0, kept = 0;
    const unsigned char *q = s;
    int sticky = 0;

    reserve_scratch(d, 0, KEEP_DIGITS + 40);
    if (n->neg)
        d->scratch[len++] = '-';
    for (; q < p && *q != 'e' && *q != 'E'; q++) {
        if (!IS_DIGIT(*q) || (kept == 0 && *q == '0'))
            continue;
        if (kept < KEEP_DIGITS) {
            d->scratch[len++] = *q;
            kept++;
        } else if (*q != '0')
            sticky = 1;
    }
    if (sticky) {
        d->scratch[len++] = '1';
        kept++;
    }
    len += (size_t)snprintf((char *)d->scratch + len, 32, "e%ld",
                            (long)(n->pos + n->e - (int64_t)kept));
    return number_vm(d, (const char *)d->scratch, len, s);
}

/* Parses the number starting at p and pushes it. Integral literals that fit
 * int64 become integers on Lua 5.3+. Fractions go through Clinger's fast path
 * (a mantissa below 2^53 times an exact power of ten is one correctly rounded
 * operation) and otherwise through the VM's conversion. */
static const unsigned char *number(dec *d, const unsigned char *p)
{
    const unsigned char *s = p;
    numscan n;
    int64_t mag, exp10;

    n.m = 0;
    n.nd = n.folded = n.pos = n.e = 0;
    n.neg = *p == '-';
    n.integral = 1;
    p += n.neg;
    if (*p == '0') {
        p++;
    } else if (IS_DIGIT(*p)) {
        do {
            if (n.nd < 19) n.m = n.m * 10 + (unsigned)(*p - '0');
            n.nd++;
            p++;
        } while (IS_DIGIT(*p));
        n.pos = n.nd;
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
        n.integral = 0;
        do {
            if (n.nd == 0 && *p == '0') {
                n.folded++;                 /* a leading zero only scales */
                n.pos--;
            } else {
                if (n.nd < 19) {
                    n.m = n.m * 10 + (unsigned)(*p - '0');
                    n.folded++;
                }
                n.nd++;
            }
            p++;
        } while (IS_DIGIT(*p));
    }
    if (*p == 'e' || *p == 'E') {
        int eneg = 0;
        p++;
        if (*p == '+' || *p == '-')
            eneg = *p++ == '-';
        if (!IS_DIGIT(*p)) {
            fail(d, p, p >= d->end ? "unexpected end of input" : "invalid number");
            return NULL;
        }
        n.integral = 0;
        do {
            if (n.e < EXP_SATURATE) n.e = n.e * 10 + (*p - '0');
            p++;
        } while (IS_DIGIT(*p));
        if (eneg) n.e = -n.e;
    }
    if (n.integral && n.nd <= 19) {
        if (n.m == 0 && n.neg)
            lua_pushnumber(d->L, -0.0);
        else if (!n.neg && n.m <= (uint64_t)INT64_MAX)
            be_pushint(d->L, (int64_t)n.m);
        else if (n.neg && n.m <= (uint64_t)INT64_MAX + 1)
            be_pushint(d->L, (int64_t)(0 - n.m));
        else        /* 19 digits beyond int64: one correctly rounded conversion */
            lua_pushnumber(d->L, n.neg ? -(lua_Number)n.m : (lua_Number)n.m);
        return p;
    }
    mag = n.pos + n.e;
    if (n.nd == 0 || mag < -324) {          /* zero, or below half the least subnormal */
        lua_pushnumber(d->L, n.neg ? -0.0 : 0.0);
        return p;
    }
    if (mag > 309) {                        /* at least 10^309: beyond DBL_MAX */
        fail_plain(d, s, "number out of range");
        return NULL;
    }
    exp10 = n.e - n.folded;
#if FLT_EVAL_METHOD == 0
    if (n.nd <= 19 && n.m <= ((uint64_t)1 << 53) && exp10 >= -22 && exp10 <= 22) {
        double v = (double)n.m;
        v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
        lua_pushnumber(d->L, n.neg ? -v : v);
        return p;
    }
#endif
    if (!number_normalized(d, s, p, &n))
        return NULL;
    {
        lua_Number v = lua_tonumber(d->L, -1);
        if (v == HUGE_VAL || v == -HUGE_VAL) {
            lua_pop(d->L, 1);
            fail_plain(d, s, "number out of range");
            return NULL;
        }
    }
    return p;
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
    need(d, 3);
    if (*p != '"') {
        fail(d, p, p >= d->end ? "unexpected end of input" : "expected string key");
        return NULL;
    }
    p = string(d, p + 1, 0);
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

value:
    p = skip_ws(p);
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
        need(d, 2);
        goto value;
    case '"':
        p = string(d, p + 1, SCACHE_SIZE);
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
        } else {
            /* nil: an array slot stays empty; an object member is left out,
             * and setting it still removes an earlier duplicate of its key */
            lua_pushnil(L);
            if (!d->frames[d->depth - 1].object)
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
    f->count++;
    if (f->flushed) {
        if (f->object)
            lua_rawset(L, f->base);
        else
            lua_rawseti(L, f->base, f->count);
    } else
        relieve(d, f);
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
        need(d, 2);
        p++;
        goto value;
    }
    if (*p == ']') {
        p++;
        goto close;
    }
    return fail(d, p, p >= d->end ? "unexpected end of input" : "expected ',' or ']'");

close:
    need(d, 3);
    close_container(d);
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
    if (!lua_checkstack(L, STACK_CHUNK + 3))
        luaL_error(L, "blandeval: Lua stack exhausted");
    lua_pushnil(L);                          /* frames_slot */
    lua_pushnil(L);                          /* scratch_slot */
    d.use_scache = len >= SCACHE_MIN_INPUT;
    if (d.use_scache) {
        lua_createtable(L, 2 * SCACHE_SIZE, 0);  /* scache_slot: the cached strings */
        memset(d.scache, 0, sizeof d.scache);
    } else
        lua_pushnil(L);
    d.frames_slot = top + 1;
    d.scratch_slot = top + 2;
    d.scache_slot = top + 3;
    d.values_base = top + 3;
    d.room = STACK_CHUNK;
    d.frames = d.inline_frames;
    d.frames_cap = INLINE_FRAMES;
    d.depth = 0;
    d.scratch = d.inline_buf;
    d.scratch_cap = INLINE_BUF;
    d.keep_nulls = opts->keep_nulls;
    d.max_depth = opts->max_depth;

    /* RFC 8259 lets a parser skip a UTF-8 byte order mark */
    if (p[0] == 0xEF) {
        if (!literal(&d, p, "\xEF\xBB\xBF", 3)) {
            describe(&d, err);
            lua_settop(L, top);
            return 0;
        }
        p += 3;
    }
    if (!parse(&d, p)) {
        describe(&d, err);
        lua_settop(L, top);
        return 0;
    }
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return 1;
}
