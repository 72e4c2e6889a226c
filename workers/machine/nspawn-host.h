/* SPDX-License-Identifier: MIT */
/*
 * nspawn-host.h: the host side of a container start (see nspawn-host.c).
 */
#pragma once

#include <stddef.h>

#include "machine-config.h"

/* Past this many inotify instances per user, every container's systemd has
 * what it needs (each takes several). */
#define NSPAWN_INOTIFY_INSTANCES 4096

/* A number from a one-line file (a sysctl), -1 if unreadable. */
long nspawn_read_long(const char *path);
/* Raise fs.inotify limits that are lower than containers need, or say which
 * one stops us (once per worker). */
void nspawn_raise_inotify_limits(void);
/* Refuse at once, naming the field, what nspawn would only fail on later;
 * @why says what. */
int nspawn_preflight(const struct machine_config *c, char *why, size_t size);
/* The host files the container sees under /run/vigil-host. */
int nspawn_prepare_host_dir(const struct machine_config *c, char *why, size_t size);
/* No udevd: mark @tap initialised in udev's database as udevd would; the
 * entry's ifindex goes to *@ret_ifindex (unchanged if none was written). */
void nspawn_udev_mark(const char *tap, int *ret_ifindex);
/* Remove the entries nspawn_udev_mark() wrote (the @n ifindexes, zeroed). */
void nspawn_udev_forget(int *ifindex, size_t n);
