/* SPDX-License-Identifier: MIT */
/*
 * switch-tap.c owns the kernel side of a TAP port: creating (or re-creating)
 * the interface a container's network namespace takes, and bringing it up in
 * the switch's own namespace without an address. These are the only calls in
 * the switch that need a capability (CAP_NET_ADMIN, which sup-kind.c leaves
 * to the switch kind and nothing else); everything else about a TAP port
 * (queues, rules, pcap, stats) is the same code as a VDE port.
 */
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "fd-util.h"
#include "log.h"
#include "macro.h"
#include "switch-core.h"
#include "switch-tap.h"

/* The host's kernel would otherwise give the interface an IPv6 link-local
 * address and send router solicitations, MLD reports and DAD probes into the
 * VLAN from a host that is not one of the test's machines. The setting dies
 * with the namespace move (a device gets fresh per-netns IPv6 state), so the
 * container's own choice is untouched. Best effort: no IPv6, no file. */
static void tap_disable_ipv6(const char *name) {
        char path[96];
        _cleanup_close_ int fd = -EBADF;

        snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0)
                (void) !write(fd, "1", 1);
}

static int tap_link_up(const char *name) {
        _cleanup_close_ int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {};

        if (sk < 0)
                return negative_errno();
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(sk, SIOCGIFFLAGS, &ifr) < 0)
                return negative_errno();
        if (ifr.ifr_flags & IFF_UP)
                return 0;
        ifr.ifr_flags |= IFF_UP;
        /* Privileged (CAP_NET_ADMIN): only ever on the TAP we just created. */
        if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0)
                return negative_errno();
        return 0;
}

int tap_open(const char *name, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI};
        int r;

        if (!tap_name_valid(name))
                return -EINVAL;
        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        /* Privileged (CAP_NET_ADMIN): creates the interface in the switch's
         * network namespace, or attaches to an existing TAP of that name that
         * has no reader (EBUSY if it has one: another switch owns it). The
         * interface lives as long as some process holds this fd, or until its
         * namespace dies; the supervisor's fd store is such a holder. */
        if (ioctl(fd, TUNSETIFF, &ifr) < 0)
                return negative_errno();
        if (!streq(ifr.ifr_name, name))
                return -EEXIST; /* the kernel renamed it: never use a name we did not ask for */
        tap_disable_ipv6(name);
        r = tap_link_up(name);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static const struct {
        int error;
        const char *hint;
} tap_hints[] = {
        {-EPERM, "creating a TAP device needs CAP_NET_ADMIN: run vigil as root (nspawn machines need it anyway)"},
        {-EACCES, "creating a TAP device needs CAP_NET_ADMIN and access to /dev/net/tun: run vigil as root"},
        {-ENOENT, "/dev/net/tun is missing: load the tun module (modprobe tun) or give the sandbox /dev/net/tun"},
        {-ENODEV, "the tun driver is missing: load the tun module (modprobe tun)"},
        {-EBUSY, "another process already reads a TAP of that name (another vigil run with the same VLAN and node "
                 "numbers, or a leftover one)"},
        {-EINVAL, "the name is taken by an interface that is not a TAP"},
        {-EEXIST, "the kernel gave the TAP another name"},
};

const char *tap_error_hint(int r) {
        for (size_t i = 0; i < ELEMENTSOF(tap_hints); i++)
                if (tap_hints[i].error == r)
                        return tap_hints[i].hint;
        return "look for a conflicting interface with `ip link`";
}
