/* SPDX-License-Identifier: MIT */
/*
 * machine-config.h owns the machine worker's reading of its configuration:
 * the JSON the supervisor sends in MSG_CONFIG (contract: proto/worker-config.h
 * and docs/machine.md, "Configuration"), parsed by the shared table and then
 * held to what this worker needs of it (unix socket path lengths, MAC,
 * interface and host name syntax, per-backend defaults) before anything acts
 * on it. Pure code; errors come back as text naming the offending field.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ssh-argv.h"
#include "worker-config.h"

#define MACHINE_CONFIG_ERROR_MAX WORKER_CONFIG_ERROR_MAX

/* Parse @json. On failure returns -EINVAL and writes a message into @error. */
int machine_config_parse(const char *json, struct machine_config *ret, char *error, size_t error_size);
void machine_config_done(struct machine_config *c);

/* The "ssh" object as an SSH target (ssh-target.h), checked; refusals name the field. */
int machine_config_ssh_target(const struct machine_config *c, struct ssh_target *ret, char *error, size_t size);

/* "52:54:00:12:01:03": six hex pairs joined by ':'. */
bool machine_mac_valid(const char *s);
