/* SPDX-License-Identifier: MIT */
/*
 * machine-config.c: MSG_CONFIG JSON -> struct machine_config (see
 * machine-config.h). The shared table (proto/worker-config.c) checks keys,
 * types and bounds; this file adds what the worker itself relies on: paths
 * that must fit a sockaddr_un, names that go into argv, a shell script and
 * /etc/hosts, and the per-backend defaults. Pure.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>

#include "machine-config.h"
#include "macro.h"

_printf_(3, 4) static int bad(char *error, size_t size, const char *fmt, ...) {
        va_list ap;
        int n = snprintf(error, size, "machine config: ");

        va_start(ap, fmt);
        if (n >= 0 && (size_t) n < size)
                (void) vsnprintf(error + n, size - (size_t) n, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* IFNAMSIZ is 16 with the NUL. Stricter than the kernel: the name also goes
 * into the setup script and nspawn's argv. */
static bool ifname_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 15 || streq(s, ".") || streq(s, ".."))
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("._-", *s))
                        return false;
        return true;
}

bool machine_mac_valid(const char *s) {
        for (size_t i = 0; i < 17; i++) {
                bool colon = i % 3 == 2;
                if (colon ? s[i] != ':' : !isxdigit((unsigned char) s[i]))
                        return false;
        }
        return s[17] == 0;
}

/* Hostnames and addresses land in a shell script and /etc/hosts: keep them to
 * what a hostname or an address can hold. */
static bool host_word_valid(const char *s, bool address) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr(address ? ".:/" : "-._", *s))
                        return false;
        return true;
}

static int check_common(struct machine_config *m, char *error, size_t size) {
        /* sun_path holds 108 bytes; "<state_dir>/monitor" must fit. */
        if (strlen(m->state_dir) + strlen("/monitor") >= 108)
                return bad(error, size, "state_dir \"%s\" is too long for unix socket paths (max 99 bytes)",
                           m->state_dir);
        for (size_t i = 0; i < m->n_vlans; i++) {
                const struct machine_vlan *vl = &m->vlans[i];

                if (vl->tap && !ifname_valid(vl->tap))
                        return bad(error, size,
                                   "vlans[%zu].tap \"%s\" is not an interface name (1-15 of A-Z a-z 0-9 . _ -)", i,
                                   vl->tap);
                if (vl->mac && !machine_mac_valid(vl->mac))
                        return bad(error, size, "vlans[%zu].mac \"%s\" is not a MAC address like 52:54:00:12:01:03", i,
                                   vl->mac);
        }
        for (size_t i = 0; i < m->n_hosts; i++)
                if (!host_word_valid(m->hosts[i].name, false) || !host_word_valid(m->hosts[i].address, true))
                        return bad(error, size, "hosts[%zu] (\"%s\" \"%s\") is not a hostname and an address", i,
                                   m->hosts[i].name, m->hosts[i].address);
        if (!m->shared_dir && asprintf(&m->shared_dir, "%s/xchg", m->state_dir) < 0) {
                m->shared_dir = NULL;
                return -ENOMEM;
        }
        return 0;
}

static int check_qemu(struct machine_config *m, char *error, size_t size) {
        if (!m->binary && !(m->binary = strdup("qemu-system-x86_64")))
                return -ENOMEM;
        return 0;
}

static int check_nspawn(struct machine_config *m, char *error, size_t size) {
        /* A NixOS run-<name>-nspawn script boots its container itself
         * (docs/machine.md, "NixOS container start scripts"). */
        if (m->start_script) {
                if (m->start_script[0] != '/')
                        return bad(error, size, "\"nspawn.start_script\" must be an absolute path, not \"%s\"",
                                   m->start_script);
                if (m->binary || m->extra_args)
                        return bad(error, size,
                                   "\"nspawn.binary\" and \"nspawn.extra_args\" are for a \"tree\" (a start script "
                                   "runs systemd-nspawn itself)");
                return 0;
        }
        /* sun_path holds 108 bytes; "<state_dir>/host/backdoor.sock" must fit. */
        if (strlen(m->state_dir) + strlen("/host/backdoor.sock") >= 108)
                return bad(error, size, "state_dir \"%s\" is too long for the backdoor socket path (max 88 bytes)",
                           m->state_dir);
        if (m->tree[0] != '/')
                return bad(error, size, "\"nspawn.tree\" must be an absolute path, not \"%s\"", m->tree);
        if (!host_word_valid(m->name, false))
                return bad(error, size,
                           "\"name\" \"%s\" cannot be a container's hostname (letters, digits, '-', '.', '_')",
                           m->name);
        if (!m->binary && !(m->binary = strdup("systemd-nspawn")))
                return -ENOMEM;
        return 0;
}

int machine_config_ssh_target(const struct machine_config *c, struct ssh_target *ret, char *error, size_t size) {
        const struct ssh_settings in = {
                .host = c->ssh_host,
                .user = c->ssh_user,
                .port = c->ssh_port,
                .identity_file = c->ssh_identity_file,
                .known_hosts = c->ssh_known_hosts,
                .proxy_jump = c->ssh_proxy_jump,
                .options = c->ssh_options,
                .connect_timeout_s = c->ssh_connect_timeout_s,
        };
        char why[SSH_ERROR_MAX];
        int r = ssh_target_make(&in, ret, why, sizeof why);

        if (r == -EINVAL)
                return bad(error, size, "%s", why);
        return r;
}

static int check_ssh(struct machine_config *m, char *error, size_t size) {
        struct ssh_target t;
        char control[128];
        int r;

        if (ssh_control_path(m->state_dir, control, sizeof control) < 0)
                return bad(error, size, "state_dir \"%s\" is too long for ssh's control socket path (max %zu bytes)",
                           m->state_dir, (size_t) SSH_CONTROL_PATH_MAX - strlen("/" SSH_CONTROL_NAME));
        r = machine_config_ssh_target(m, &t, error, size);
        if (r >= 0)
                ssh_target_done(&t);
        return r;
}

static int (*const backend_checks[_MACHINE_BACKEND_KIND_MAX])(struct machine_config *m, char *error, size_t size) = {
        [MACHINE_BACKEND_QEMU] = check_qemu,
        [MACHINE_BACKEND_NSPAWN] = check_nspawn,
        [MACHINE_BACKEND_SSH] = check_ssh,
};

int machine_config_parse(const char *json, struct machine_config *ret, char *error, size_t error_size) {
        struct machine_config m;
        int r;

        r = worker_config_machine_parse(json, &m, error, error_size);
        if (r < 0)
                return r;
        r = check_common(&m, error, error_size);
        if (r >= 0)
                r = backend_checks[m.backend_kind](&m, error, error_size);
        if (r < 0) {
                if (r == -ENOMEM)
                        (void) snprintf(error, error_size, "machine config: out of memory");
                machine_config_done(&m);
                return r;
        }
        *ret = m;
        return 0;
}

void machine_config_done(struct machine_config *c) {
        worker_config_done(&worker_config_machine, c);
}
