/* SPDX-License-Identifier: MIT */
/*
 * qemu-probe.h: the bounded KVM probe (see qemu-probe.c).
 */
#pragma once

#include "qemu-argv.h"
#include "worker.h"

struct qemu_probe;

struct qemu_probe_ops {
        /* The probe ended with @result (cached for the run already). */
        void (*done)(void *userdata, enum qemu_kvm_probe result);
};

/* The cache lives in the parent of @state_dir (one per run). */
int qemu_probe_new(struct worker *w, const char *state_dir, const struct qemu_probe_ops *ops, void *userdata,
                   struct qemu_probe **ret);
struct qemu_probe *qemu_probe_free(struct qemu_probe *q);
/* This run's verdict so far, else this boot's for @binary (which then
 * becomes the run's), QEMU_KVM_UNTESTED if none. */
enum qemu_kvm_probe qemu_probe_cached(struct qemu_probe *q, const char *binary);
void qemu_probe_cache(struct qemu_probe *q, enum qemu_kvm_probe result);
/* Boot @kernel with KVM: > 0 probing (ops->done follows), 0 no /dev/kvm,
 * < 0 it could not be started. */
int qemu_probe_start(struct qemu_probe *q, char *binary, char *kernel);
