/* sanitize_preload.c: preloaded into lua5.4 after the sanitizer runtime by
 * spec/support/sanitize.sh. Once the loader has used LD_PRELOAD it takes it out
 * of the environment, so that the processes the specs start (curl, nginx, sh)
 * run without the runtime, which some of them cannot do (curl and ps hang). */
#define _POSIX_C_SOURCE 200112L

#include <stdlib.h>

__attribute__((constructor)) static void drop_preload(void)
{
    unsetenv("LD_PRELOAD");
}
