/* SPDX-License-Identifier: MIT */
/*
 * sup-spawn.h: fork+exec of one process with exactly the stdio, channel,
 * cgroup and capabilities asked for, its own error carried back; where worker
 * executables are found; the environment every spawned process gets.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "log.h"
#include "sup-kind.h"

struct spawn_req {
        const char *path; /* exec this file; NULL: search argv[0] in PATH */
        char *const *argv;
        char *const *envp;
        const char *cwd; /* NULL or "": the supervisor's */
        int stdio[3];    /* -1: /dev/null */
        int chan_fd;     /* >= 0: becomes fd 3 */
        const struct cap_policy *caps;
        const char *cgroup; /* NULL, or a group (sup_cgroup_create) the child joins before exec */
};

/* Raise our own RLIMIT_NOFILE; every spawned process gets the original back. */
void spawn_raise_nofile(void);
/* 0 with *ret_pid and *ret_pidfd, or < 0 with the reason (the child's own
 * wording when exec failed) in @errbuf. */
int spawn_process(const struct spawn_req *req, pid_t *ret_pid, int *ret_pidfd, char *errbuf, size_t errsize);
/* The executable of kind @k: $VIGIL_LIBEXEC_DIR, @self_dir, the build tree, libexecdir. */
int spawn_resolve_exe(const char *self_dir, const struct sup_kind *k, char *buf, size_t size);
char **spawn_worker_env(const char *run_id, enum log_target t);
/* @env without our notify/watchdog state, plus VIGIL_RUN. */
char **spawn_env_with_run(char *const *env, const char *run_id);
