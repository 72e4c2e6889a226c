/* SPDX-License-Identifier: MIT */
/*
 * fs-util.h owns the few file-system helpers the supervisor's front ends
 * share: reading a whole (bounded) file, replacing one whole, creating a
 * directory path and removing a tree.
 * Non-logging; negative errno returns.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Read @path whole into a NUL-terminated malloc'd *@ret; -EFBIG past @max bytes. */
int read_file_max(const char *path, size_t max, char **ret);
/* mkdir -p with @mode for every component it creates. */
int mkdir_p(const char *path, mode_t mode);
/* rm -rf that never follows a symlink or crosses into another mount; best effort. */
void rm_rf(const char *path);
/* @text as @path, replaced whole: written to <path>.tmp.<pid> (@mode, not
 * through a symlink; with @sync on disk first), then renamed over it; the
 * temporary file is gone on error. */
int write_file_atomic(const char *path, const char *text, mode_t mode, bool sync);
