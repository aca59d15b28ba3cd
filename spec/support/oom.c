/* oom.c: runs blandeval.decode with an allocator that fails the Nth allocation,
 * for every N until the decode succeeds, and checks that each failure is a
 * clean memory error and that closing the state returns every byte.
 *
 *   oom MODULE.so FILE.json [keep_nulls]
 * prints "ok <attempts> <allocations> <type of the result>" or a line saying
 * what went wrong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

typedef struct budget {
    long armed;       /* allocations left before failing; -1: unlimited */
    long count;       /* allocations made while armed */
    size_t live;      /* bytes outstanding */
} budget;

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    budget *b = (budget *)ud;
    void *np;

    if (ptr == NULL)
        osize = 0;
    if (nsize == 0) {
        free(ptr);
        b->live -= osize;
        return NULL;
    }
    if (nsize > osize && b->armed >= 0) {
        if (b->armed == 0)
            return NULL;
        b->armed--;
        b->count++;
    }
    np = realloc(ptr, nsize);
    if (np != NULL)
        b->live += nsize - osize;
    return np;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *s;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0)
        return NULL;
    rewind(f);
    s = malloc((size_t)n + 1);
    if (s == NULL || fread(s, 1, (size_t)n, f) != (size_t)n)
        return NULL;
    fclose(f);
    s[n] = '\0';
    *len = (size_t)n;
    return s;
}

int main(int argc, char **argv)
{
    size_t len;
    char *text;
    long n;

    if (argc < 3 || (text = slurp(argv[2], &len)) == NULL) {
        fprintf(stderr, "usage: oom MODULE.so FILE.json [keep_nulls]\n");
        return 2;
    }
    for (n = 0;; n++) {
        budget b = { -1, 0, 0 };
        lua_State *L = lua_newstate(alloc, &b);
        lua_CFunction open;
        int rc;

        if (L == NULL) {
            printf("unsupported: lua_newstate refused a custom allocator\n");
            return 0;
        }
        luaL_openlibs(L);
        lua_getglobal(L, "package");
        lua_getfield(L, -1, "loadlib");
        lua_pushstring(L, argv[1]);
        lua_pushliteral(L, "luaopen_blandeval_core");
        if (lua_pcall(L, 2, 1, 0) != 0 || (open = lua_tocfunction(L, -1)) == NULL) {
            printf("cannot load %s\n", argv[1]);
            return 1;
        }
        lua_call(L, 0, 1);                       /* the module table */
        lua_getfield(L, -1, "decode");
        lua_pushlstring(L, text, len);
        lua_createtable(L, 0, 1);
        lua_pushboolean(L, argc > 3);
        lua_setfield(L, -2, "keep_nulls");
        b.armed = n;                             /* the decode call may allocate n times */
        rc = lua_pcall(L, 2, 1, 0);
        b.armed = -1;
        if (rc == 0) {
            const char *type = luaL_typename(L, -1);
            lua_close(L);
            if (b.live != 0) {
                printf("leak: %lu bytes after the decode returned\n", (unsigned long)b.live);
                return 1;
            }
            printf("ok %ld %ld %s\n", n + 1, b.count, type);
            return 0;
        }
        if (rc != LUA_ERRMEM) {
            printf("allocation %ld: expected a memory error, got %d: %s\n", n, rc,
                   lua_tostring(L, -1) ? lua_tostring(L, -1) : "(no message)");
            return 1;
        }
        lua_close(L);
        if (b.live != 0) {
            printf("leak: %lu bytes after failing allocation %ld\n", (unsigned long)b.live, n);
            return 1;
        }
    }
}
