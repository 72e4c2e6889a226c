/* SPDX-License-Identifier: MIT */
/*
 * sup-kind.h: the static table of worker kinds (executable, privileges of the
 * worker and of the processes it asks for). Which messages a kind may send is
 * sup-dispatch.c's table, not this one.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "msg.h"

#define CAP_POLICY_MAX 16 /* capabilities one policy may keep */

struct cap_policy {
        bool keep_all;   /* leave the capability sets alone (see sup-kind.c for who and why) */
        const int *caps; /* otherwise: exactly these, in effective/permitted/bounding */
        size_t n_caps;
        bool no_new_privs;
};

struct sup_kind {
        enum worker_kind kind;
        const char *exe;        /* installed name, e.g. "vigil-machine" */
        const char *build_path; /* relative to VIGIL_BUILD_ROOT */
        struct cap_policy caps; /* for the worker itself */
        /* for processes it asks the spawn service for, by argv[0] basename; NULL = default */
        const struct cap_policy *(*spawn_caps)(const char *argv0);
        /* true: a process it asks for gets its own cgroup (it manages a subtree: systemd-nspawn) */
        bool (*spawn_own_cgroup)(const char *argv0);
};

const struct sup_kind *kind_get(enum worker_kind k);
/* Between fork and exec: leave exactly @p's capabilities. */
int kind_caps_apply(const struct cap_policy *p);
