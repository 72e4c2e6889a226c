/* SPDX-License-Identifier: MIT */
/*
 * switch-tap.h: creating the TAP devices that are vigil-switch's ports for
 * containers (see switch-tap.c).
 */
#pragma once

/* Create TAP @name (IFF_TAP|IFF_NO_PI) in the caller's network namespace, or
 * attach to an unused one of that name; link up, no address, IPv6 off.
 * *ret_fd is a non-blocking CLOEXEC fd carrying one Ethernet frame per
 * read()/write(). Negative errno on failure (tap_error_hint() explains). */
int tap_open(const char *name, int *ret_fd);
/* What to do about tap_open()'s error @r (never NULL). */
const char *tap_error_hint(int r);
