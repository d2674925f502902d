// cpu_kept: a kernel's scratch buffer kept between calls (see cpu_internal.h).
#include "kernels/cpu/cpu_internal.h"
#include "base/mem.h"

char *cpu_kept_get(cpu_kept *k, size_t need, int *kept) {
    *kept = pthread_mutex_trylock(&k->mu) == 0;
    if (!*kept) return ufo_alloc(need);   // in use by another application thread: one of our own
    if (need <= k->size) return k->buf;
    ufo_free(k->buf);
    k->size = 0;
    if ((k->buf = ufo_alloc(need))) {
        k->size = need;
        return k->buf;
    }
    pthread_mutex_unlock(&k->mu);
    *kept = 0;
    return NULL;
}

void cpu_kept_put(cpu_kept *k, char *p, int kept) {
    if (kept) pthread_mutex_unlock(&k->mu);
    else ufo_free(p);
}
