/* SPDX-License-Identifier: MIT */
/*
 * qemu-bootram.h: the guest RAM file of a boot snapshot (see qemu-bootram.c).
 */
#pragma once

#include <stdint.h>

/* The guest RAM of QEMU @qemu_pid as a boot that saves has it: QEMU's
 * memfd, opened anew through /proc (nothing of it outlives QEMU, whatever
 * dies when). An fd, -ENOENT if QEMU has none. */
int qemu_bootram_open(int64_t qemu_pid);
/* A copy of the guest RAM @in as the new file @to, sparse: holes and
 * all-zero pages stay holes; on disk (fdatasync) when this returns, as a
 * snapshot names only files whose data is there. */
int qemu_bootram_copy(int in, const char *to);
