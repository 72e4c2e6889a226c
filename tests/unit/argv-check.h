/* SPDX-License-Identifier: MIT */
/* argv-check.h: lookups in a NULL-terminated argv for the argv unit tests
 * (test-machine-qemu-argv, test-nspawn-argv). */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

#include "macro.h"

static inline bool argv_has(char **v, const char *s) {
        for (; v && *v; v++)
                if (streq(*v, s))
                        return true;
        return false;
}

/* The index of the first @s in @v, or -1. */
static inline ssize_t argv_index(char **v, const char *s) {
        for (ssize_t i = 0; v && v[i]; i++)
                if (streq(v[i], s))
                        return i;
        return -1;
}
