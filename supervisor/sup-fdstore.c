/* SPDX-License-Identifier: MIT */
/*
 * sup-fdstore.c owns one child's fd store: the fds a worker handed over with
 * FD_STORE (hypervisor pidfd, QMP and shell sockets, switch ports), kept by
 * name across its restarts. Pure bookkeeping: no logging, no events; the
 * caller decides what a refusal means.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fd-util.h"
#include "macro.h"
#include "sup-fdstore.h"

static struct fdstore_entry *fdstore_find(struct fdstore *st, const char *name) {
        for (size_t i = 0; i < st->n; i++)
                if (streq(st->entries[i].name, name))
                        return &st->entries[i];
        return NULL;
}

int fdstore_put(struct fdstore *st, const char *name, int *fd) {
        struct fdstore_entry *e = fdstore_find(st, name);

        if (!e) {
                if (st->n >= FDSTORE_MAX)
                        return -E2BIG;
                if (st->n == st->cap) {
                        size_t cap = MIN(MAX(st->cap * 2, (size_t) 8), (size_t) FDSTORE_MAX);
                        struct fdstore_entry *n = realloc(st->entries, cap * sizeof(struct fdstore_entry));
                        if (!n)
                                return -ENOMEM;
                        st->entries = n;
                        st->cap = cap;
                }
                char *copy = strdup(name);
                if (!copy)
                        return -ENOMEM;
                e = &st->entries[st->n++];
                *e = (struct fdstore_entry){.name = copy, .fd = -EBADF};
        }
        safe_close(e->fd);
        e->fd = TAKE_FD(*fd);
        return 0;
}

int fdstore_forget(struct fdstore *st, const char *name) {
        struct fdstore_entry *e = fdstore_find(st, name);

        if (!e)
                return -ENOENT;
        free(e->name);
        safe_close(e->fd);
        *e = st->entries[--st->n];
        return 0;
}

void fdstore_clear(struct fdstore *st) {
        for (size_t i = 0; i < st->n; i++) {
                free(st->entries[i].name);
                safe_close(st->entries[i].fd);
        }
        free(st->entries);
        *st = (struct fdstore){};
}
