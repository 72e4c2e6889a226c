/* SPDX-License-Identifier: MIT */
/*
 * ssh-argv.c: OpenSSH argv (see ssh-argv.h). Pure.
 *
 * Every process shares one connection: the master (-M -N, ControlPersist=no
 * so it stays in the foreground, where the supervisor tracks its pid and
 * PDEATHSIG reaches it) and the rest as its mux clients through
 * <state>/ssh-control. BatchMode=yes everywhere: a missing key, a passphrase
 * or an unknown host key fails the connection with ssh's message instead
 * of prompting, so nothing can ever wait for a person.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "ssh-argv.h"
#include "strv-builder.h"

const char ssh_backdoor_command[] =
        "export USER=\"$(id -un)\" PAGER=; if [ -e /etc/profile ]; then set +u; . /etc/profile; fi >/dev/null 2>&1; "
        "cd /tmp 2>/dev/null || cd /; echo 'Spawning backdoor root shell...'; PS1= exec bash --norc";

/* clang-format off */
/* Per role: its flags, and whether it takes a remote command (0 none, 1
 * required, 2 optional). Mux clients never become a master themselves
 * (ControlMaster=no): a dead master must show, not be silently replaced by a
 * process vigil does not track. */
static const struct {
        const char *const flags[8];
        int command;
} role_table[_SSH_ROLE_MAX] = {
        [SSH_ROLE_MASTER]  = {{"-M", "-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no"}, 0},
        [SSH_ROLE_SESSION] = {{"-T", "-o", "ControlMaster=no"}, 1},
        [SSH_ROLE_EXEC]    = {{"-T", "-o", "ControlMaster=no"}, 1},
        [SSH_ROLE_TTY]     = {{"-tt", "-e", "none", "-o", "ControlMaster=no"}, 2},
        [SSH_ROLE_CHECK]   = {{"-O", "check", "-o", "ControlMaster=no"}, 0},
        [SSH_ROLE_EXIT]    = {{"-O", "exit", "-o", "ControlMaster=no"}, 0},
};

/* clang-format on */

int ssh_control_path(const char *state_dir, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s/" SSH_CONTROL_NAME, state_dir);

        if (n < 0 || (size_t) n >= size || (size_t) n > SSH_CONTROL_PATH_MAX)
                return -ENAMETOOLONG;
        return 0;
}

static void add_opt(struct strv_builder *b, const char *opt) {
        strv_builder_addf(b, "-o");
        strv_builder_addf(b, "%s", opt);
}

int ssh_build_argv(const struct ssh_target *t, const char *state_dir, enum ssh_role role, const char *command,
                   char ***ret) {
        struct strv_builder b = {};
        char control[128];
        int r;

        if (role < 0 || role >= _SSH_ROLE_MAX || !t->host)
                return -EINVAL;
        if ((role_table[role].command == 1 && !command) || (role_table[role].command == 0 && command))
                return -EINVAL;
        r = ssh_control_path(state_dir, control, sizeof control);
        if (r < 0)
                return r;

        strv_builder_addf(&b, "ssh");
        for (size_t i = 0; i < ELEMENTSOF(role_table[role].flags) && role_table[role].flags[i]; i++)
                strv_builder_addf(&b, "%s", role_table[role].flags[i]);
        /* First value wins in OpenSSH (command line before ssh_config), so
         * what the contract needs comes first. */
        add_opt(&b, "BatchMode=yes");
        strv_builder_addf(&b, "-o");
        strv_builder_addf(&b, "ControlPath=%s", control);
        switch (t->known_hosts) {
        case SSH_KNOWN_HOSTS_STRICT:
                add_opt(&b, "StrictHostKeyChecking=yes");
                break;
        case SSH_KNOWN_HOSTS_ACCEPT_NEW:
                add_opt(&b, "StrictHostKeyChecking=accept-new");
                strv_builder_addf(&b, "-o");
                strv_builder_addf(&b, "UserKnownHostsFile=%s/" SSH_KNOWN_HOSTS_NAME, state_dir);
                add_opt(&b, "GlobalKnownHostsFile=/dev/null");
                /* Readable by people (Debian's ssh_config hashes host names). */
                add_opt(&b, "HashKnownHosts=no");
                break;
        case SSH_KNOWN_HOSTS_FILE:
                add_opt(&b, "StrictHostKeyChecking=yes");
                strv_builder_addf(&b, "-o");
                strv_builder_addf(&b, "UserKnownHostsFile=%s", t->known_hosts_file);
                add_opt(&b, "GlobalKnownHostsFile=/dev/null");
                break;
        case _SSH_KNOWN_HOSTS_MAX:
        case _SSH_KNOWN_HOSTS_INVALID:
                strv_free(b.v);
                return -EINVAL;
        }
        if (role == SSH_ROLE_MASTER) {
                /* A dead link is noticed within ~15 s even while nothing is sent;
                 * forwardings from the user's ssh_config are not vigil's business. */
                add_opt(&b, "ServerAliveInterval=5");
                add_opt(&b, "ServerAliveCountMax=3");
                add_opt(&b, "ClearAllForwardings=yes");
                add_opt(&b, "ForwardAgent=no");
                add_opt(&b, "ForwardX11=no");
        }
        if (t->identity_file) {
                strv_builder_addf(&b, "-i");
                strv_builder_addf(&b, "%s", t->identity_file);
                add_opt(&b, "IdentitiesOnly=yes");
        }
        if (t->proxy_jump) {
                strv_builder_addf(&b, "-J");
                strv_builder_addf(&b, "%s", t->proxy_jump);
        }
        if (t->port > 0) {
                strv_builder_addf(&b, "-p");
                strv_builder_addf(&b, "%u", t->port);
        }
        strv_builder_addf(&b, "-l");
        strv_builder_addf(&b, "%s", t->user ?: "root");
        for (char **o = t->options; o && *o; o++)
                add_opt(&b, *o);
        /* Defaults the user's options may override. */
        strv_builder_addf(&b, "-o");
        strv_builder_addf(&b, "ConnectTimeout=%u", t->connect_timeout_s ?: SSH_CONNECT_TIMEOUT_DEFAULT);
        add_opt(&b, "LogLevel=ERROR");
        strv_builder_addf(&b, "%s", t->host);
        if (command)
                strv_builder_addf(&b, "%s", command);
        return strv_builder_finish(&b, ret);
}
