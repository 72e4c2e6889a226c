/* SPDX-License-Identifier: MIT */
/*
 * qemu-bootcache.h: boot snapshots of one QEMU machine (see qemu-bootcache.c).
 */
#pragma once

#include <stdbool.h>

#include "machine.h"
#include "qemu-argv.h"
#include "qemu-control.h"

/* The boot cache's QMP requests carry kinds from here on; the backend's own
 * kinds stay below. */
#define QEMU_BOOTCACHE_KIND_BASE 1000

struct qemu_bootcache;

struct qemu_bootcache_ops {
        /* A restore's snapshot is loaded: the start may go on (cont). */
        void (*loaded)(void *userdata);
};

int qemu_bootcache_new(struct machine *m, struct qemu_control *ctl, const struct qemu_bootcache_ops *ops,
                       void *userdata, struct qemu_bootcache **ret);
struct qemu_bootcache *qemu_bootcache_free(struct qemu_bootcache *q);

/* QEMU answered the start's cont: the restored VM runs from now (the agent
 * sets the guest's clock from this moment). No-op unless restoring. */
void qemu_bootcache_continued(struct qemu_bootcache *q);

/* Before QEMU is spawned: decide (load, save or off), and for a load put the
 * snapshot's disks into the state dir (none may be there already) and add
 * -incoming defer to @cmd. @only_restore (a restore prepared ahead of
 * start()): without a snapshot to load, decide nothing (a dead save's
 * leftover file is still removed). */
int qemu_bootcache_plan(struct qemu_bootcache *q, struct qemu_cmd *cmd, bool only_restore);
bool qemu_bootcache_restoring(const struct qemu_bootcache *q);
/* Seconds since the restore began; @reset: it begins now (the start() that
 * takes a restore loaded ahead). */
double qemu_bootcache_restore_clock(struct qemu_bootcache *q, bool reset);
/* In the start-up handshake, instead of cont: load the snapshot (ops->loaded follows). */
int qemu_bootcache_load(struct qemu_bootcache *q);
/* After machine_started() of a restored boot. */
void qemu_bootcache_restored(struct qemu_bootcache *q);
/* QEMU exited while loading: set the snapshot aside and remove the disks
 * the restore placed (the backend boots cold). */
void qemu_bootcache_discard(struct qemu_bootcache *q, const char *why);
/* The guest shell came up: save a snapshot if this boot is to (with the
 * disks QEMU writes in the state dir; any other disk: none, ever, for the
 * key). */
void qemu_bootcache_guest_ready(struct qemu_bootcache *q);
/* Re-attached to a running QEMU: if the previous worker died saving a
 * snapshot, finish the save (keep the file only if the migration completed),
 * cont the VM and mount its shares again before any queued command. */
void qemu_bootcache_attached(struct qemu_bootcache *q);
/* QEMU is gone: stop polling, let the shell queue go. */
void qemu_bootcache_reset(struct qemu_bootcache *q);
/* The answer to / failure of one of its requests: true if it was one. */
bool qemu_bootcache_answered(struct qemu_bootcache *q, const struct qemu_request *r, const char *reply);
bool qemu_bootcache_failed(struct qemu_bootcache *q, const struct qemu_request *r, const char *why);
