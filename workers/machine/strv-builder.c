/* SPDX-License-Identifier: MIT */
/*
 * strv-builder.c: the sticky-error string vector (see strv-builder.h). Pure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strv-builder.h"

void strv_builder_add_owned(struct strv_builder *b, char *s) {
        if (b->error || !s) {
                free(s);
                b->error = b->error ?: -ENOMEM;
                return;
        }
        if (b->n + 2 > b->alloc) {
                size_t a = MAX(b->alloc * 2, (size_t) 16);
                char **p = realloc(b->v, a * sizeof *p);
                if (!p) {
                        free(s);
                        b->error = -ENOMEM;
                        return;
                }
                b->v = p;
                b->alloc = a;
        }
        b->v[b->n++] = s;
        b->v[b->n] = NULL;
}

void strv_builder_add(struct strv_builder *b, const char *s) {
        strv_builder_add_owned(b, strdup(s));
}

void strv_builder_addf(struct strv_builder *b, const char *fmt, ...) {
        va_list ap;
        char *s;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        strv_builder_add_owned(b, s);
}

void strv_builder_addv(struct strv_builder *b, char *const *v) {
        for (; v && *v; v++)
                strv_builder_add(b, *v);
}

int strv_builder_finish(struct strv_builder *b, char ***ret) {
        if (!b->error && !b->v) {
                b->v = calloc(1, sizeof(char *));
                if (!b->v)
                        b->error = -ENOMEM;
        }
        if (b->error) {
                int r = b->error;
                strv_free(b->v);
                *b = (struct strv_builder){};
                return r;
        }
        *ret = b->v;
        *b = (struct strv_builder){};
        return 0;
}
