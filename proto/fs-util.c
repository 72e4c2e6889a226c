/* SPDX-License-Identifier: MIT */
/* fs-util.c: see fs-util.h. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"

int read_file_max(const char *path, size_t max, char **ret) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        _cleanup_free_ char *buf = NULL;
        size_t n = 0, cap = 0;

        if (!f)
                return negative_errno();
        for (;;) {
                if (cap - n < 4096) {
                        if (cap > max)
                                return -EFBIG;
                        cap = cap ? cap * 2 : 8192;
                        char *b = realloc(buf, cap + 1);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                }
                size_t k = fread(buf + n, 1, cap - n, f);
                n += k;
                if (k == 0)
                        break;
        }
        if (ferror(f))
                return -EIO;
        if (n > max)
                return -EFBIG;
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        if (mkdir(p, mode) < 0 && errno != EEXIST)
                                return negative_errno();
                        *s = '/';
                }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

static int rm_rf_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) (flag == FTW_DP ? rmdir(path) : unlink(path));
        return 0;
}

void rm_rf(const char *path) {
        (void) nftw(path, rm_rf_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

int write_file_atomic(const char *path, const char *text, mode_t mode, bool sync) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t len = strlen(text);

        if (asprintf(&tmp, "%s.tmp.%lld", path, (long long) getpid()) < 0)
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return negative_errno();
        if (write(fd, text, len) != (ssize_t) len || (sync && fdatasync(fd) < 0) || rename(tmp, path) < 0) {
                int r = errno ? negative_errno() : -EIO;
                (void) unlink(tmp);
                return r;
        }
        return 0;
}
