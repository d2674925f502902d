#include "base/file.h"
#include "base/error.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int ufo_map_file(const char *path, ufo_mapped *m) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ufo_errorf("%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return ufo_errorf("%s: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return ufo_errorf("%s: is a directory, expected a file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size == 0) {
        close(fd);
        return 0;
    }
    void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return ufo_errorf("%s: mmap failed: %s", path, strerror(errno));
    m->data = p;
    m->is_mmap = 1;
    return 0;
}

void ufo_unmap(ufo_mapped *m) {
    if (m->data) {
        if (m->is_mmap) munmap((void *)m->data, m->size);
        else free((void *)m->data);
    }
    memset(m, 0, sizeof *m);
}

int ufo_read_file(const char *path, char **out, size_t *size) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return ufo_errorf("%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) {
            fclose(fp);
            return ufo_errorf("%s: out of memory", path);
        }
        n += fread(buf + n, 1, cap - n, fp);
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) free(buf);
        buf = nb;
    }
    int err = ferror(fp);
    fclose(fp);
    if (err) {
        free(buf);
        return ufo_errorf("%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    if (size) *size = n;
    return 0;
}

int ufo_atomic_open(ufo_atomic_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    size_t n = strlen(path) + 32;
    f->path = strdup(path);
    f->tmp = malloc(n);
    if (!f->path || !f->tmp) {
        ufo_atomic_abort(f);
        return ufo_errorf("out of memory");
    }
    snprintf(f->tmp, n, "%s.tmp.%d", path, (int)getpid());
    f->fp = fopen(f->tmp, "wb");
    if (!f->fp) {
        int e = errno;
        ufo_errorf("%s: cannot create: %s", path, strerror(e));
        free(f->path);
        free(f->tmp);
        memset(f, 0, sizeof *f);
        return -1;
    }
    return 0;
}

int ufo_atomic_write(ufo_atomic_file *f, const void *buf, size_t n) {
    if (n && fwrite(buf, 1, n, f->fp) != n)
        return ufo_errorf("%s: write failed: %s", f->path, strerror(errno));
    return 0;
}

int ufo_atomic_commit(ufo_atomic_file *f) {
    int rc = 0;
    if (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0)
        rc = ufo_errorf("%s: write failed: %s", f->path, strerror(errno));
    if (fclose(f->fp) != 0 && rc == 0)
        rc = ufo_errorf("%s: write failed: %s", f->path, strerror(errno));
    f->fp = NULL;
    if (rc == 0 && rename(f->tmp, f->path) != 0)
        rc = ufo_errorf("%s: rename failed: %s", f->path, strerror(errno));
    if (rc != 0) remove(f->tmp);
    free(f->path);
    free(f->tmp);
    memset(f, 0, sizeof *f);
    return rc;
}

void ufo_atomic_abort(ufo_atomic_file *f) {
    if (f->fp) fclose(f->fp);
    if (f->tmp) remove(f->tmp);
    free(f->path);
    free(f->tmp);
    memset(f, 0, sizeof *f);
}
