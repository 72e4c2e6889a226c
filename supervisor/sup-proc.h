/* SPDX-License-Identifier: MIT */
/*
 * sup-proc.h: the spawn service's process records, one list per child: start
 * one, find it by name, end them, and tell the worker when one ended.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "sup-spawn.h"

struct child;
struct sup;
struct sup_proc;

/* Spawn @req as @c's process @name (own cgroup if @own_cgroup) and record it;
 * @machine: it is the machine itself, which its events say (role=machine).
 * On failure @err says why, for the worker's ERROR reply. */
int proc_spawn(struct child *c, const char *name, struct spawn_req *req, bool own_cgroup, bool machine,
               struct sup_proc **ret, char *err, size_t errsize);
struct sup_proc *proc_find(struct child *c, const char *name);
/* @p ended: log it, send PROC_EXIT to its worker (or keep it for the next
 * one if the worker is down), free @p. */
void proc_exited(struct sup_proc *p, int code, int sig);
/* The PROC_EXITs kept while @c's worker was down, after its CONFIG. */
void proc_flush_pending_exits(struct child *c);
/* SIGTERM (SIGKILL after PROC_TERM_USEC), or SIGKILL at once. */
void proc_kill_all(struct child *c, bool immediately);
struct sup_proc *proc_free(struct sup_proc *p);
/* Free every record of @c (processes still running are left to PDEATHSIG). */
void proc_free_all(struct child *c);
size_t proc_count(struct sup *s);
