/* SPDX-License-Identifier: MIT */
/*
 * defaults.h owns every default that more than one room relies on: what a
 * run gets when nobody says otherwise. Each is defined here once and used by
 * the front end, the supervisor and the workers alike; docs quote these
 * values (docs/cli.md, docs/spec.md, docs/restart-semantics.md,
 * docs/machine.md) and tests/unit/test-worker-config.c checks that they do.
 */
#pragma once

/* A default as text, for help strings: "(default " DEFAULT_TEXT(DEFAULT_CPUS) ")". */
#define DEFAULT_TEXT(name)  DEFAULT_TEXT_(name)
#define DEFAULT_TEXT_(name) #name

/* The whole run's deadline, owned by the supervisor (`--global-timeout`). */
#define DEFAULT_GLOBAL_TIMEOUT_S 3600

/* A machine's start -> its backdoor ready line (`--boot-timeout`), capped by
 * the global timeout. The reference waits until the global timeout; a boot
 * that has not connected after 10 minutes of TCG is not going to (a NixOS
 * guest connects in well under 2 minutes there), and the error should say so. */
#define DEFAULT_BOOT_TIMEOUT_S 600

/* The machine worker's own bound on the ready line when its config gives
 * none (`vigil run` always gives one: the boot timeout above). */
#define DEFAULT_CONNECT_S 300

/* OTP's supervisor default: at most 1 restart in 5 s, beyond which the tree
 * gives up (`vigil supervise` specs without "intensity"). */
#define DEFAULT_INTENSITY_MAX_RESTARTS 1
#define DEFAULT_INTENSITY_MAX_SECONDS  5

/* A machine's memory and CPUs (a kernel+initrd VM: the tiny guest, distro images). */
#define DEFAULT_MEMORY_MB 256
#define DEFAULT_CPUS      1

/* Cap on one command's output (a whole reply), so memory stays bounded
 * whatever a guest prints. */
#define DEFAULT_OUTPUT_MAX (64u * 1024u * 1024u) /* 64 MiB */

/* The file `vigil shell` creates in a VM's state dir when nothing answers on
 * its debug console (hvc1); the machine worker watches for it and starts a
 * shell there (workers/machine/qemu-debugshell.c). */
#define DEBUG_SHELL_REQUEST_NAME "debug-shell.request"
