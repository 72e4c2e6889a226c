/* SPDX-License-Identifier: MIT */
/*
 * nspawn-argv.h owns how a container is described: the systemd-nspawn argv
 * (flags and why in docs/machine.md, "nspawn"), the container's machine name
 * and hostname, and the per-node setup script the tree's vigil-setup.service
 * runs (TAPs renamed to eth1.. in VLAN order, contract MACs, addresses,
 * /etc/hosts). Pure code over the machine config; the backend writes the
 * files and asks the supervisor to spawn.
 */
#pragma once

#include <stddef.h>

#include "machine-config.h"

/* Under the state dir: the directory bound to /run/vigil-host in the
 * container, and the files in it. */
#define NSPAWN_HOST_DIR      "host"
#define NSPAWN_GUEST_DIR     "/run/vigil-host"
#define NSPAWN_BACKDOOR_NAME "backdoor.sock"
#define NSPAWN_SETUP_NAME    "setup"
#define NSPAWN_HOSTNAME_NAME "hostname"

/* Hostnames allow letters, digits and '-' (systemd's hostname_is_valid):
 * other bytes of @name become '-', at most 63 bytes. */
int nspawn_hostname(const char *name, char *buf, size_t size);

/* "vigil-<8 hex of a hash of state_dir>-<hostname>", at most 64 bytes: unique
 * per run and machine (nspawn keys its lock and propagation directories on it). */
int nspawn_machine_name(const char *state_dir, const char *name, char *buf, size_t size);

/* The argv for @c (backend nspawn), @machine from nspawn_machine_name(). */
int nspawn_build_argv(const struct machine_config *c, const char *machine, char ***ret);

/* The text of <state>/host/setup. */
int nspawn_build_setup(const struct machine_config *c, char **ret);
