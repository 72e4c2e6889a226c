/* SPDX-License-Identifier: MIT */
/*
 * errmsg.h owns the one way pure parsers (specs, plans, configs) report a
 * refusal: a malloc'd message naming the offending input in *ret_error, and
 * -EINVAL as the return value, so `return errmsg_invalid(ret_error, ...)`
 * reads as one step.
 */
#pragma once

#include "macro.h"

/* Writes the message into *@ret_error (if @ret_error is not NULL; NULL on
 * OOM) and returns -EINVAL. */
int errmsg_invalid(char **ret_error, const char *fmt, ...) _printf_(2, 3);
