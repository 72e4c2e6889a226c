/* SPDX-License-Identifier: MIT */
/*
 * ssh-argv.h owns how an SSH machine is reached: the OpenSSH argv of each
 * process the backend runs over one ControlMaster connection (the master,
 * the backdoor session, one-shot commands, an interactive tty for `vigil
 * shell`, `-O check|exit`), for a target proto/ssh-target.h describes. Pure
 * code; contract in docs/machine.md, "ssh".
 */
#pragma once

#include "ssh-target.h"

/* Under the state dir: the master's control socket and accept-new's file. */
#define SSH_CONTROL_NAME     "ssh-control"
#define SSH_KNOWN_HOSTS_NAME "known_hosts"
/* OpenSSH binds "<ControlPath>.<16 random chars>" first, then renames it. */
#define SSH_CONTROL_PATH_MAX (108 - 1 - 17)

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
