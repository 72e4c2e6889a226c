/* SPDX-License-Identifier: MIT */
/*
 * nspawn-argv.c: systemd-nspawn argv, names and the per-node setup script
 * (see nspawn-argv.h). Pure.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "nspawn-argv.h"
#include "strv-builder.h"

int nspawn_hostname(const char *name, char *buf, size_t size) {
        size_t n = 0;

        if (size < 2 || !*name)
                return -EINVAL;
        for (; name[n] && n < 63 && n + 1 < size; n++) {
                char ch = name[n];
                bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
                buf[n] = ok ? ch : '-';
        }
        buf[n] = 0;
        return 0;
}

/* FNV-1a: only needs to tell runs apart, not resist anyone. */
static uint32_t fnv1a(const char *s) {
        uint32_t h = 2166136261u;

        for (; *s; s++) {
                h ^= (uint8_t) *s;
                h *= 16777619u;
        }
        return h;
}

int nspawn_machine_name(const char *state_dir, const char *name, char *buf, size_t size) {
        char host[64];
        int r = nspawn_hostname(name, host, sizeof host);

        if (r < 0)
                return r;
        host[64 - strlen("vigil-12345678-") - 1] = 0; /* nspawn machine names are hostnames: <= 64 */
        if ((size_t) snprintf(buf, size, "vigil-%08x-%s", fnv1a(state_dir), host) >= size)
                return -ENAMETOOLONG;
        return 0;
}

int nspawn_build_argv(const struct machine_config *c, const char *machine, char ***ret) {
        struct strv_builder b = {};
        char host[64];
        int r;

        if (!c->tree || !c->binary)
                return -EINVAL;
        r = nspawn_hostname(c->name, host, sizeof host);
        if (r < 0)
                return r;
        strv_builder_addf(&b, "%s", c->binary);
        /* No bus on this kind of host (no systemd as PID 1): neither a
         * transient scope (--keep-unit) nor machined registration. */
        strv_builder_addf(&b, "--quiet");
        strv_builder_addf(&b, "--keep-unit");
        strv_builder_addf(&b, "--register=no");
        strv_builder_addf(&b, "--boot");
        strv_builder_addf(&b, "--directory=%s", c->tree);
        /* The tree stays read-only: every node writes to its own tmpfs overlay. */
        strv_builder_addf(&b, "--volatile=overlay");
        strv_builder_addf(&b, "--machine=%s", machine);
        strv_builder_addf(&b, "--hostname=%s", host);
        /* The console is a pty whose output nspawn copies to its stdout: the
         * machine's console log, as QEMU's serial port. */
        strv_builder_addf(&b, "--console=read-only");
        strv_builder_addf(&b, "--link-journal=no");
        /* Never the host's network: only the TAPs of the node's VLANs. */
        strv_builder_addf(&b, "--private-network");
        for (size_t i = 0; i < c->n_vlans; i++)
                if (c->vlans[i].tap)
                        strv_builder_addf(&b, "--network-interface=%s", c->vlans[i].tap);
        strv_builder_addf(&b, "--bind=%s/" NSPAWN_HOST_DIR ":" NSPAWN_GUEST_DIR, c->state_dir);
        /* The tree's own /etc/hostname would override --hostname at boot. */
        strv_builder_addf(&b, "--bind-ro=%s/" NSPAWN_HOST_DIR "/" NSPAWN_HOSTNAME_NAME ":/etc/hostname", c->state_dir);
        if (c->shared_dir)
                strv_builder_addf(&b, "--bind=%s:/tmp/shared", c->shared_dir);
        strv_builder_addf(&b, "--bind=%s/xchg:/tmp/xchg", c->state_dir);
        strv_builder_addf(&b, "--setenv=SYSTEMD_COLORS=0");
        for (char **a = c->extra_args; a && *a; a++)
                strv_builder_addf(&b, "%s", *a);
        return strv_builder_finish(&b, ret);
}

/* Every value below was checked by machine-config (interface names, MACs,
 * addresses and hostnames hold no shell metacharacters). */
int nspawn_build_setup(const struct machine_config *c, char **ret) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        size_t eth = 0;

        if (!f)
                return -ENOMEM;
        fprintf(f,
                "# Written by vigil-machine for machine %s; vigil-setup.service runs it at boot, and with \"stop\"\n"
                "# at shutdown.\n",
                c->name);
        /* systemd-nspawn moves the TAPs back out by their original names when
         * the container ends (and fails a reboot if it cannot). */
        fputs("if [ \"${1:-}\" = stop ]; then\n", f);
        for (size_t i = 0; i < c->n_vlans; i++)
                if (c->vlans[i].tap) {
                        eth++;
                        fprintf(f,
                                "    if ip link show dev eth%zu >/dev/null 2>&1; then ip link set dev eth%zu down; ip "
                                "link set dev eth%zu name %s || true; fi\n",
                                eth, eth, eth, c->vlans[i].tap);
                }
        fputs("    exit 0\nfi\n", f);
        eth = 0;
        fputs("set -e\nip link set dev lo up\n", f);
        for (size_t i = 0; i < c->n_vlans; i++) {
                const struct machine_vlan *v = &c->vlans[i];
                if (!v->tap)
                        continue;
                eth++;
                fprintf(f, "# VLAN %llu: TAP %s becomes eth%zu\n", (unsigned long long) v->nr, v->tap, eth);
                fprintf(f,
                        "if ip link show dev %s >/dev/null 2>&1; then ip link set dev %s down; ip link set dev %s "
                        "name eth%zu; fi\n",
                        v->tap, v->tap, v->tap, eth);
                if (v->mac)
                        fprintf(f, "ip link set dev eth%zu address %s\n", eth, v->mac);
                if (v->address)
                        fprintf(f, "ip addr replace %s dev eth%zu\n", v->address, eth);
                fprintf(f, "ip link set dev eth%zu up\n", eth);
        }
        if (c->n_hosts > 0) {
                fputs("if ! grep -q '^# vigil hosts' /etc/hosts 2>/dev/null; then\n", f);
                fputs("cat >>/etc/hosts <<'VIGIL_HOSTS'\n# vigil hosts\n", f);
                for (size_t i = 0; i < c->n_hosts; i++)
                        fprintf(f, "%s %s\n", c->hosts[i].address, c->hosts[i].name);
                fputs("VIGIL_HOSTS\nfi\n", f);
        }
        if (fclose(f) != 0) {
                free(text);
                return -ENOMEM;
        }
        *ret = text;
        return 0;
}
