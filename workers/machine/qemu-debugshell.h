/* SPDX-License-Identifier: MIT */
/*
 * qemu-debugshell.h: a root shell on a VM's debug console on request (see
 * qemu-debugshell.c).
 */
#pragma once

#include "defaults.h" /* DEBUG_SHELL_REQUEST_NAME */
#include "machine.h"

struct qemu_debugshell;

/* Watch @m's state dir; a request already there is served at once. */
int qemu_debugshell_new(struct machine *m, struct qemu_debugshell **ret);
struct qemu_debugshell *qemu_debugshell_free(struct qemu_debugshell *d);
