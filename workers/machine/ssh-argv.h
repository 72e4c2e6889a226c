/* SPDX-License-Identifier: MIT */
/*
 * ssh-argv.h owns how an SSH machine is described and reached: the target
 * (user, host, port, key file, known_hosts policy, ProxyJump, extra -o
 * options) parsed from `ssh:[user@]host[:port]` or the config's "ssh"
 * object, and the OpenSSH argv of each process the backend runs over one
 * ControlMaster connection (the master, the backdoor session, one-shot
 * commands, an interactive tty for `vigil shell`, `-O check|exit`). Pure
 * code (json-c only); contract in docs/machine.md, "ssh".
 */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Under the state dir: the master's control socket and accept-new's file. */
#define SSH_CONTROL_NAME     "ssh-control"
#define SSH_KNOWN_HOSTS_NAME "known_hosts"
/* OpenSSH binds "<ControlPath>.<16 random chars>" first, then renames it. */
#define SSH_CONTROL_PATH_MAX (108 - 1 - 17)

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

/* What an ssh process is for; each role has its own flags (ssh-argv.c's table). */
enum ssh_role {
        SSH_ROLE_MASTER,  /* the one connection: -M -N in the foreground */
        SSH_ROLE_SESSION, /* the backdoor shell over the master (-T) */
        SSH_ROLE_EXEC,    /* one command over the master (-T) */
        SSH_ROLE_TTY,     /* an interactive shell over the master (-tt, no escape char) */
        SSH_ROLE_CHECK,   /* -O check: is the master alive */
        SSH_ROLE_EXIT,    /* -O exit: end the master */
        _SSH_ROLE_MAX,
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

/* "<state_dir>/ssh-control"; -ENAMETOOLONG if OpenSSH could not bind it. */
int ssh_control_path(const char *state_dir, char *buf, size_t size);

/* The argv of an ssh process of @role for @t, its control socket and
 * accept-new's known_hosts under @state_dir; @command is the remote command
 * (SESSION, EXEC: required; TTY: optional; others: none). */
int ssh_build_argv(const struct ssh_target *t, const char *state_dir, enum ssh_role role, const char *command,
                   char ***ret);

/* The backdoor session's remote command: what the VM backdoor does on hvc0
 * (profile, ready line, bash reading commands from stdin). */
extern const char ssh_backdoor_command[];
