/* oom_client.c: turns pages of the client with an allocator that fails the
 * Nth allocation, for N = 1, 2, ... until a run completes without reaching
 * a failure, and checks that each failure ends in a clean Lua error, that
 * the client still works afterwards and that closing the state returns every
 * byte. Each N runs in a child process forked from a state that has already
 * loaded the modules and made its clients, so N counts the allocations of
 * the scenario alone, and a crash or a hang is reported for its N.
 *
 *   oom_client CPATH LPATH SCRIPT once|after [EVERY STRIDE [FIRST]]
 *
 * SCRIPT runs unarmed (with package.cpath = CPATH, package.path = LPATH) and
 * returns the scenario function, run armed with the global OOM_N = N, and
 * optionally a check function, run unarmed after it with the scenario's
 * pcall status: it may continue what the scenario left, and raises when
 * something is wrong. After a failure the scenario runs again, unarmed, and
 * must succeed.
 *   once    only the Nth allocation fails (Lua 5.4 then collects and tries
 *           again: the failure is absorbed or surfaces from a later step)
 *   after   the Nth and every later allocation fail
 * N goes one by one from FIRST (default 1) up to EVERY (default -1: no
 * limit), then by STRIDE. A child that runs longer than $OOM_TIMEOUT seconds
 * (default 30) is a hang. Prints "ok <runs> <allocations of a whole
 * scenario> <runs whose failure was absorbed>" or a line saying what went
 * wrong for which N. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

typedef struct budget {
    long armed;       /* allocations left before failing; -1: unlimited */
    int once;         /* disarm after the first failure */
    int tripped;      /* an allocation was refused */
    long count;       /* allocations made while armed */
    size_t live;      /* bytes outstanding */
} budget;

/* what a child tells its parent, besides its exit status */
enum { FAILED = 1, ABSORBED, UNTRIPPED };
typedef struct report {
    int outcome;
    long count;
} report;

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
        if (b->armed == 0) {
            b->tripped = 1;
            if (b->once)
                b->armed = -1;
            return NULL;
        }
        b->armed--;
        b->count++;
    }
    np = realloc(ptr, nsize);
    if (np != NULL)
        b->live += nsize - osize;
    return np;
}

/* The error on the top of the stack, as text (the state is unarmed): its
 * tostring, pushed (LuaJIT has no luaL_tolstring). */
static const char *error_text(lua_State *L)
{
    const char *s;

    lua_getglobal(L, "tostring");
    lua_pushvalue(L, -2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || (s = lua_tostring(L, -1)) == NULL)
        return "(an error value tostring cannot show)";
    return s;
}

/* A failure is clean when it is a memory error, or an error whose text says
 * that memory ran out: the library's own messages, or a memory error that
 * Lua code caught and raised again. */
static int clean_failure(lua_State *L, int rc)
{
    const char *s;

    if (rc == LUA_ERRMEM)
        return 1;
    if (rc != LUA_ERRRUN || lua_isnil(L, -1))
        return 0;
    s = error_text(L);
    lua_pop(L, 1);
    return strstr(s, "not enough memory") != NULL || strstr(s, "out of memory") != NULL;
}

/* One N in a child: the scenario (index 1) armed, the check (index 2, or
 * nil), the scenario again after a failure, then lua_close. Writes its report
 * to fd; returns the exit status (1 after printing what went wrong). */
static int child(lua_State *L, budget *b, long n, int once, int fd)
{
    report r;
    int rc, tripped;

    memset(&r, 0, sizeof r);                 /* all of it goes down the pipe */
    lua_pushinteger(L, (lua_Integer)n);     /* for ids that must differ from child to child */
    lua_setglobal(L, "OOM_N");
    b->armed = n - 1;
    b->once = once;
    b->tripped = 0;
    b->count = 0;
    lua_pushvalue(L, 1);
    rc = lua_pcall(L, 0, 0, 0);
    b->armed = -1;
    tripped = b->tripped;
    r.count = b->count;
    if (rc != LUA_OK && !tripped) {
        printf("allocation %ld: the scenario failed without an allocation failure: %s\n", n,
               error_text(L));
        return 1;
    }
    if (rc != LUA_OK && !clean_failure(L, rc)) {
        printf("allocation %ld: not a clean memory error (status %d): %s\n", n, rc, error_text(L));
        return 1;
    }
    r.outcome = !tripped ? UNTRIPPED : rc != LUA_OK ? FAILED : ABSORBED;
    lua_settop(L, 2);
    if (!lua_isnil(L, 2)) {
        lua_pushvalue(L, 2);
        lua_pushboolean(L, rc == LUA_OK);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            printf("allocation %ld: %s\n", n, error_text(L));
            return 1;
        }
    }
    /* a run that completed has just shown that the scenario works */
    if (r.outcome == FAILED) {
        lua_pushvalue(L, 1);
        if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
            printf("allocation %ld: the scenario fails once memory is back: %s\n", n,
                   error_text(L));
            return 1;
        }
    }
    lua_close(L);
    if (b->live != 0) {
        printf("allocation %ld: %lu bytes still allocated after lua_close\n", n,
               (unsigned long)b->live);
        return 1;
    }
    if (write(fd, &r, sizeof r) != (ssize_t)sizeof r)
        return 1;
    return 0;
}

/* Runs N in a child and waits for it. Returns the child's report, outcome 0
 * when it went wrong (and says how). */
static report run_one(lua_State *L, budget *b, long n, int once, unsigned timeout)
{
    report r = { 0, 0 };
    int fds[2], status;
    pid_t pid;
    ssize_t got;

    fflush(stdout);
    if (pipe(fds) != 0 || (pid = fork()) < 0) {
        printf("allocation %ld: cannot fork: %s\n", n, strerror(errno));
        return r;
    }
    if (pid == 0) {
        int code;
        close(fds[0]);
        alarm(timeout);                      /* a hang ends as SIGALRM */
        code = child(L, b, n, once, fds[1]);
        fflush(stdout);
        exit(code);
    }
    close(fds[1]);
    do
        got = read(fds[0], &r, sizeof r);
    while (got < 0 && errno == EINTR);
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status)) {
        printf("allocation %ld: the child died of signal %d (%s)\n", n, WTERMSIG(status),
               WTERMSIG(status) == SIGALRM ? "a hang" : strsignal(WTERMSIG(status)));
        r.outcome = 0;
    } else if (WEXITSTATUS(status) != 0 || got != (ssize_t)sizeof r) {
        if (WEXITSTATUS(status) != 1)        /* 1: the child said why */
            printf("allocation %ld: the child exited with status %d\n", n, WEXITSTATUS(status));
        r.outcome = 0;
    }
    return r;
}

int main(int argc, char **argv)
{
    budget b = { -1, 0, 0, 0, 0 };
    lua_State *L;
    long n, every, stride, runs = 0, absorbed = 0;
    int once;
    const char *t = getenv("OOM_TIMEOUT");
    unsigned timeout = t != NULL ? (unsigned)atoi(t) : 30;

    if (argc < 5 || (strcmp(argv[4], "once") != 0 && strcmp(argv[4], "after") != 0)) {
        fprintf(stderr, "usage: oom_client CPATH LPATH SCRIPT once|after [EVERY STRIDE [FIRST]]\n");
        return 2;
    }
    once = strcmp(argv[4], "once") == 0;
    every = argc > 5 ? atol(argv[5]) : -1;
    stride = argc > 6 ? atol(argv[6]) : 1;
    n = argc > 7 ? atol(argv[7]) : 1;
    if (stride < 1 || n < 1) {
        fprintf(stderr, "oom_client: STRIDE and FIRST must be >= 1\n");
        return 2;
    }
    L = lua_newstate(alloc, &b);
    if (L == NULL) {
        printf("unsupported: lua_newstate refused a custom allocator\n");
        return 0;
    }
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushstring(L, argv[1]);
    lua_setfield(L, -2, "cpath");
    lua_pushstring(L, argv[2]);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    if (luaL_loadfile(L, argv[3]) != LUA_OK || lua_pcall(L, 0, 2, 0) != LUA_OK) {
        printf("setup failed: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    if (!lua_isfunction(L, 1)) {
        printf("setup failed: %s returned no scenario function\n", argv[3]);
        lua_close(L);
        return 1;
    }
    lua_gc(L, LUA_GCCOLLECT, 0);             /* each child starts from the same settled heap */
    for (;; n += every >= 0 && n >= every ? stride : 1) {
        report r = run_one(L, &b, n, once, timeout);
        if (r.outcome == 0) {
            lua_close(L);
            return 1;
        }
        runs++;
        absorbed += r.outcome == ABSORBED;
        if (r.outcome == UNTRIPPED) {
            lua_close(L);
            if (b.live != 0) {
                printf("leak: %lu bytes still allocated after lua_close\n", (unsigned long)b.live);
                return 1;
            }
            printf("ok %ld %ld %ld\n", runs, r.count, absorbed);
            return 0;
        }
    }
}
