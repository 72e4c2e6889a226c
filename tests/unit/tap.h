/* SPDX-License-Identifier: MIT */
/* tap.h: the few lines of TAP every C unit test prints. */
#pragma once
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_failed;

#define CHECK(cond, ...)                                                                                              \
        do {                                                                                                          \
                bool _ok = (cond);                                                                                    \
                tap_n++;                                                                                              \
                if (_ok)                                                                                              \
                        printf("ok %d - ", tap_n);                                                                    \
                else {                                                                                                \
                        tap_failed++;                                                                                 \
                        printf("not ok %d - ", tap_n);                                                                \
                }                                                                                                     \
                printf(__VA_ARGS__);                                                                                  \
                printf("%s\n", _ok ? "" : "  (" #cond " at " __FILE__ ")");                                           \
        } while (0)

static inline int tap_done(void) {
        printf("1..%d\n", tap_n);
        return tap_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
