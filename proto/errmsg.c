/* SPDX-License-Identifier: MIT */
/* errmsg.c: see errmsg.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "errmsg.h"

int errmsg_invalid(char **ret_error, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return -EINVAL;
}
