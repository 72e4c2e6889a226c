/* SPDX-License-Identifier: MIT */
/*
 * sup-fdstore.h: one child's stored fds, by name (the fd store). Pure data:
 * a restarted worker gets them back with FD_RESTORE.
 */
#pragma once

#include <stddef.h>

#define FDSTORE_MAX 1024u /* stored fds per child (a switch keeps 1 + 2 per port) */

struct fdstore_entry {
        char *name;
        int fd;
};

struct fdstore {
        struct fdstore_entry *entries; /* grown on demand up to FDSTORE_MAX */
        size_t n, cap;
};

/* Store *fd under @name, replacing (and closing) an fd of that name. Takes
 * *fd (sets it to -EBADF) on success only. -E2BIG past FDSTORE_MAX, -ENOMEM. */
int fdstore_put(struct fdstore *st, const char *name, int *fd);
/* Close and drop the fd named @name; -ENOENT if there is none. */
int fdstore_forget(struct fdstore *st, const char *name);
/* Close and drop everything. */
void fdstore_clear(struct fdstore *st);
