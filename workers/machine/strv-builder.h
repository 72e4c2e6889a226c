/* SPDX-License-Identifier: MIT */
/*
 * strv-builder.h: a growing NULL-terminated string vector whose first
 * allocation failure sticks, so a command line is built with plain calls and
 * checked once at the end. Used by every backend's argv builder. Pure.
 */
#pragma once

#include "macro.h"

struct strv_builder {
        char **v;
        size_t n;
        size_t alloc;
        int error; /* the first failure (-ENOMEM), or 0 */
};

/* Appends @s and takes it (NULL: an allocation failed). */
void strv_builder_add_owned(struct strv_builder *b, char *s);
void strv_builder_add(struct strv_builder *b, const char *s);
_printf_(2, 3) void strv_builder_addf(struct strv_builder *b, const char *fmt, ...);
void strv_builder_addv(struct strv_builder *b, char *const *v);
/* The vector (never NULL) in @ret, or the first error; @b is empty after. */
int strv_builder_finish(struct strv_builder *b, char ***ret);
