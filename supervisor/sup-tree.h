/* SPDX-License-Identifier: MIT */
/*
 * sup-tree.h: the supervision tree's entry points for sup-loop.c, and the
 * callbacks through which the files below the tree report to it.
 */
#pragma once

#include "sup-records.h"

extern const struct child_ops tree_child_ops;

/* The tree's own timers; before the loop runs. */
int tree_setup(struct sup *s);
/* @c's timers, once its slot in s->children is final. */
int child_init(struct child *c);
/* Free what @c's record holds (the supervisor is going away). */
void child_done(struct child *c);
int child_signal(struct child *c, int sig);
/* Queue @c's start; tree_advance() carries it out. */
int tree_start(struct sup *s, struct child *c);
void tree_advance(struct sup *s);
/* Orderly teardown in reverse start order; ignored while one is under way. */
void tree_shutdown(struct sup *s, int exit_code, const char *why);
/* SIGKILL every worker and spawned process, now. */
void tree_kill_all(struct sup *s);
/* Kill what is left, remove the run's cgroups and leave the loop. */
void tree_finish(struct sup *s);
