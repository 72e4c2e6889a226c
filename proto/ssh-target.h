/* SPDX-License-Identifier: MIT */
/*
 * ssh-target.h owns how an SSH machine is described: the target (user, host,
 * port, key file, known_hosts policy, ProxyJump, extra -o options) parsed
 * from `ssh:[user@]host[:port]` or the config's "ssh" object, and checked
 * the same way by the front end (the plan) and the machine worker. Pure code
 * (json-c only); contract in docs/machine.md, "ssh".
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SSH_CONNECT_TIMEOUT_DEFAULT 10

enum ssh_known_hosts {
        SSH_KNOWN_HOSTS_STRICT,     /* "strict": the user's known_hosts files; an unknown key is refused */
        SSH_KNOWN_HOSTS_ACCEPT_NEW, /* "accept-new": the run's own file; the first key is recorded, a change refused */
        SSH_KNOWN_HOSTS_FILE,       /* an absolute path: only that file; an unknown key is refused */
        _SSH_KNOWN_HOSTS_MAX,
        _SSH_KNOWN_HOSTS_INVALID = -22,
};

struct ssh_target {
        char *user; /* NULL: root */
        char *host;
        unsigned port; /* 0: ssh's own default (22, or the user's ssh_config) */
        char *identity_file;
        enum ssh_known_hosts known_hosts;
        char *known_hosts_file; /* SSH_KNOWN_HOSTS_FILE only */
        char *proxy_jump;
        char **options; /* "Key=Value" each, given to ssh as -o */
        unsigned connect_timeout_s;
};

#define SSH_ERROR_MAX   256u
#define SSH_OPTIONS_MAX 64u

/* The settings as a config carries them (text and numbers; 0 = default). */
struct ssh_settings {
        const char *host;
        const char *user;
        uint64_t port;
        const char *identity_file;
        const char *known_hosts; /* "strict" (NULL), "accept-new" or an absolute path */
        const char *proxy_jump;
        char *const *options; /* "Key=Value", NULL-terminated */
        uint64_t connect_timeout_s;
};

/* "[user@]host[:port]" (what follows "ssh:" in `--node NAME=ssh:...`).
 * Hosts are names, IPv4 addresses or [IPv6] in brackets. Fills @ret's user,
 * host and port; the rest keeps its defaults. */
int ssh_target_parse_address(const char *s, struct ssh_target *ret, char *error, size_t error_size);

/* Check @in and copy it into *@ret (written only on success); a refusal
 * names the field. */
int ssh_target_make(const struct ssh_settings *in, struct ssh_target *ret, char *error, size_t error_size);

/* The config's "ssh" object: host (required), user, port, identity_file,
 * known_hosts ("strict" | "accept-new" | absolute path), proxy_jump,
 * options (["Key=Value", ...]), connect_timeout_s. Unknown keys are refused. */
int ssh_target_from_json(json_object *o, struct ssh_target *ret, char *error, size_t error_size);
void ssh_target_done(struct ssh_target *t);

bool ssh_host_valid(const char *s);
bool ssh_user_valid(const char *s);
const char *ssh_known_hosts_to_string(enum ssh_known_hosts k);
