/* SPDX-License-Identifier: MIT */
/*
 * fs-util.h owns the few file-system helpers the supervisor's front ends
 * share: reading a whole (bounded) file, creating a directory path and
 * removing a tree.
 * Non-logging; negative errno returns.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Read @path whole into a NUL-terminated malloc'd *@ret; -EFBIG past @max bytes. */
int read_file_max(const char *path, size_t max, char **ret);
/* mkdir -p with @mode for every component it creates. */
int mkdir_p(const char *path, mode_t mode);
/* rm -rf that never follows a symlink or crosses into another mount; best effort. */
void rm_rf(const char *path);
