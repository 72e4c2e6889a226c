/* SPDX-License-Identifier: MIT */
/*
 * machine-proc.h: one process a backend has the supervisor run for it
 * (QEMU, systemd-nspawn, a KVM probe, ssh), as an object. It owns the spawn
 * request and its answer (spawned or failed), telling this process's exit
 * from a leftover's, the kill timer, the fds of this process that the
 * supervisor's fd store keeps across worker restarts, and finding the
 * process and its fds again after such a restart. Backends never see
 * MSG_SPAWNED, MSG_ERROR or MSG_PROC_EXIT: machine_proc_on_frame() routes
 * them here and the process's ops are called.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "worker.h"

struct machine_proc;

/* All optional. The pid is already machine_proc_pid() (0 once exited). */
struct machine_proc_ops {
        /* The supervisor spawned the process. */
        void (*spawned)(struct machine_proc *p, int64_t pid, void *userdata);
        /* The supervisor could not spawn it (its own errno and message). */
        void (*spawn_failed)(struct machine_proc *p, int error, const char *message, void *userdata);
        /* It exited: the one spawned or restored, or (while none is known)
         * any process of this name. A stopped leftover's exit is not told. */
        void (*exited)(struct machine_proc *p, const struct msg_proc_exit *e, void *userdata);
};

/* @name is the supervisor's name for the process (unique in this worker). */
int machine_proc_new(struct worker *w, const char *name, const struct machine_proc_ops *ops, void *userdata,
                     struct machine_proc **ret);
struct machine_proc *machine_proc_free(struct machine_proc *p);

/* Ask the supervisor to spawn it; @fds (dup'ed) become its stdio per the
 * @stdio bit mask (MSG_SPAWN). The answer comes through the ops. */
int machine_proc_spawn(struct machine_proc *p, char **argv, char **env, const char *cwd, unsigned stdio,
                       const int *fds, size_t n_fds);
/* Its spawns are the machine itself (QEMU, the container), not a helper (a
 * probe, a shell): the supervisor's progress and `vigil ps` follow only the
 * machine's process. Off by default. */
void machine_proc_set_machine(struct machine_proc *p, bool machine);
int64_t machine_proc_pid(const struct machine_proc *p);
/* SIGKILL it (no reply; its exit follows). */
void machine_proc_kill(struct machine_proc *p);
/* Kill it and forget its pid: the next exit of this name is taken for its. */
void machine_proc_abandon(struct machine_proc *p);
/* SIGKILL it @usec from now unless it exits first; @why is logged then. */
void machine_proc_kill_after(struct machine_proc *p, unsigned long long usec, const char *why);
void machine_proc_cancel_kill(struct machine_proc *p);

/* The fd store: @fd points at the backend's field holding the fd to keep
 * under @name. Register once, at set-up. */
int machine_proc_add_fd(struct machine_proc *p, const char *name, int *fd);
/* Hand every registered fd that is open to the store. */
void machine_proc_store_fds(struct machine_proc *p);
/* Hand one (opened later) to the store. */
void machine_proc_store_fd(struct machine_proc *p, const char *name);
/* The store drops one / all of them (only if they were handed to it). */
void machine_proc_forget_fd(struct machine_proc *p, const char *name);
void machine_proc_forget_fds(struct machine_proc *p);

/* After a worker restart: fill every registered fd field from the fds the
 * store gave back (-EBADF where none) and return the restored pid (0: the
 * process is not running). */
int64_t machine_proc_restore(struct machine_proc *p);
/* The restored process cannot be used (its fds are lost): stop it; its exit
 * will not be taken for the exit of the process started next. */
void machine_proc_kill_stale(struct machine_proc *p);
/* Whether a leftover stopped with machine_proc_kill_stale() has not exited yet. */
bool machine_proc_stale_alive(const struct machine_proc *p);

/* "exit status N" or "killed by signal N (NAME)". */
void machine_proc_describe_exit(const struct msg_proc_exit *e, char *buf, size_t size);

/* A supervisor frame for some process of this worker: 0 if it was one
 * (SPAWNED, an ERROR answering a spawn, PROC_EXIT), -ENOENT if not. */
int machine_proc_on_frame(const struct frame *f);
