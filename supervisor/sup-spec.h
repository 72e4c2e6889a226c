/* SPDX-License-Identifier: MIT */
/*
 * sup-spec.h: what a supervision tree is made of, as data. struct child_spec
 * is the OTP child spec (id, kind, restart type, shutdown) plus what a worker
 * of that kind needs (extra argv, configuration JSON); struct sup_spec is a
 * tree (strategy, intensity, children in start order). sup_spec_parse() reads
 * the `vigil supervise` JSON format; other front ends (`vigil run`) fill the
 * structs themselves. Pure code: no I/O, no logging; errors name the bad key.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "sup-strategy.h"

#define SHUTDOWN_BRUTAL_KILL (-1)
#define SHUTDOWN_DEFAULT_MS  5000          /* OTP's default for workers */
#define SHUTDOWN_MAX_MS      (3600 * 1000) /* "infinity" is refused, as OTP warns against it for workers */

struct child_spec {
        char *id; /* unique in the tree; [A-Za-z0-9_.-], <= NAME_MAX_LEN */
        enum worker_kind kind;
        enum restart_type restart;
        int64_t shutdown_ms;      /* SHUTDOWN_BRUTAL_KILL, or ms between SIGTERM and SIGKILL */
        int64_t start_timeout_ms; /* 0: wait for READY forever (OTP); else kill it, counted as a crash */
        bool significant;         /* OTP auto_shutdown: when it ends for good, the whole tree shuts down */
        bool interactive;         /* reads vigil's stdin (else /dev/null) and gets SIGINT instead of a teardown */
        char **args;              /* extra worker argv (after --name ID), NULL-terminated; may be NULL */
        char *config_json;        /* MSG_CONFIG json; NULL means "{}" */
};

struct sup_spec {
        enum sup_strategy strategy;
        struct sup_intensity intensity;
        struct child_spec *children;
        size_t n_children;
};

/* OTP defaults: one_for_one, 1 restart in 5 s. */
void sup_spec_init(struct sup_spec *s);

/* Parse @json into @ret (initialised by the callee). On failure returns -EINVAL
 * (or -ENOMEM) and, if @ret_error is non-NULL, a malloc'd message naming the key,
 * e.g. "children[1].restart: expected permanent, transient or temporary". */
int sup_spec_parse(const char *json, struct sup_spec *ret, char **ret_error);

/* Check one child spec (also used by sup_tree_add_child()); same errors. */
int child_spec_validate(const struct child_spec *c, char **ret_error);

/* Deep copy. */
int child_spec_copy(const struct child_spec *src, struct child_spec *ret);
void child_spec_done(struct child_spec *c);
void sup_spec_done(struct sup_spec *s);

bool child_id_valid(const char *id);
