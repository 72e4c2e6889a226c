/* SPDX-License-Identifier: MIT */
/*
 * run-registry.h: how a running `vigil run` can be found from outside it.
 * Each run writes RUN_DIR/run.json (RUN_DIR is its private state directory,
 * vigil-<run8> under $XDG_RUNTIME_DIR, $TMPDIR or /tmp): its run id, the pid
 * and start time of its vigil process, the output directory, the script and
 * every machine with its backend. A run is live while that process is (same
 * pid, same start time); a run killed with SIGKILL leaves a file that says
 * so. `vigil ps` lists live runs; `vigil shell` finds one by id or output dir.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define RUN_REGISTRY_FILE "run.json"

struct run_plan;

struct run_registry_machine {
        char *name;
        char *backend; /* "qemu", "nspawn", ... as the plan says */
};

struct run_registry_entry {
        char *run_id;                  /* 32 hex digits (journalctl VIGIL_RUN=) */
        int pid;                       /* the vigil process, in the namespace of whoever started it */
        unsigned long long start_time; /* of pid: /proc/PID/stat field 22 */
        double started;                /* wall clock, seconds since the epoch */
        char *run_dir;
        char *out_dir;
        char *script;
        struct run_registry_machine *machines;
        size_t n_machines;
};

void run_registry_entry_done(struct run_registry_entry *e);
void run_registry_entries_free(struct run_registry_entry *e, size_t n);

/* Fill @ret from the plan (machines and their backends), for this process. */
int run_registry_entry_from_plan(const struct run_plan *p, const char *run_id, const char *run_dir,
                                 const char *out_dir, struct run_registry_entry *ret);
/* Write @e to @e->run_dir/run.json atomically (a reader sees the old or the new file). */
int run_registry_write(const struct run_registry_entry *e);
/* Parse run.json; -EINVAL for anything that is not one. Pure. */
int run_registry_parse(const char *json, struct run_registry_entry *ret);
/* Is the process @e names still the one that wrote it? */
bool run_registry_alive(const struct run_registry_entry *e);

/* Every live run of this user (root: of everyone) under the places vigil run
 * puts run directories ($XDG_RUNTIME_DIR, $TMPDIR, /tmp, /run/user/EUID),
 * oldest first. */
int run_registry_list(struct run_registry_entry **ret, size_t *ret_n);
/* The live run that @what names: a prefix of its run id (at least 4 hex
 * digits, unique), or its output directory. -ENOENT none, -EEXIST several. */
int run_registry_find(const char *what, struct run_registry_entry *ret, char **ret_error);
