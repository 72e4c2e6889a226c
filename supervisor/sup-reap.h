/* SPDX-License-Identifier: MIT */
/*
 * sup-reap.h: learning that workers and spawned processes ended (pidfds plus
 * a SIGCHLD sweep), and killing whatever is left at the end.
 */
#pragma once

struct child;
struct sup;
struct sup_proc;

int reap_setup(struct sup *s);
int reap_watch_child(struct child *c);
int reap_watch_proc(struct sup_proc *p);
void reap_kill_leftovers(struct sup *s);
