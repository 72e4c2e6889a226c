/* SPDX-License-Identifier: MIT */
/*
 * run-progress.h: the live progress of `vigil run` on stderr (run-progress.c):
 * a pinned status line on a terminal, plain milestone lines elsewhere.
 */
#pragma once

#include <stdbool.h>

struct event_base;
struct run_progress;

/* @fd: stderr (its size is asked; text goes out through log_stderr_write()).
 * @tty: draw the status line (stderr is a terminal), else plain lines. */
int run_progress_new(int fd, bool tty, struct run_progress **ret);
/* Start the one-second redraw on the tree's loop (terminal only). */
int run_progress_attach(struct run_progress *p, struct event_base *base);
/* One lifecycle event, as sup_hooks.event passes it. */
void run_progress_event(struct run_progress *p, const char *name, const char *child, const char *kind,
                        const char *const *kv, const char *message);
/* Give the terminal its whole screen back (idempotent). */
void run_progress_finish(struct run_progress *p);
struct run_progress *run_progress_free(struct run_progress *p);
