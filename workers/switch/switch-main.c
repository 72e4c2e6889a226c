/* SPDX-License-Identifier: MIT */
/*
 * switch-main.c owns one VLAN: a layer-2 learning switch speaking the VDE
 * control protocol, so QEMU's `-netdev vde,sock=DIR` (NixOS start scripts and
 * the tiny guest alike) connects unchanged. Every frame passes through here,
 * which is what lets a test cut, degrade, delay or duplicate traffic between
 * named machines and record it all to <out>/vlan<N>.pcap. Containers plug
 * in through TAP ports instead: one per machine that the config gives a
 * `tap` name, bound to that machine, created here (switch-tap.c) and
 * re-created whenever the network namespace that took it dies. The
 * listening socket, every VDE port's control and data sockets and every TAP
 * fd live in the supervisor's fd store: a restarted switch takes them back
 * and traffic resumes after a pause that no VM or container notices beyond
 * a few lost frames.
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>

#include "exit-status.h"
#include "fd-util.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "switch-core.h"
#include "switch-tap.h"
#include "time-util.h"
#include "worker-config.h"
#include "worker.h"

#define VDE_HANDSHAKE_TIMEOUT_SEC 5
#define DELAYED_FRAMES_MAX        4096
#define KNOWN_MACHINES_MAX        256
/* Frames held per port while its reader is slow. AF_UNIX datagram receivers
 * queue only net.unix.max_dgram_qlen (10 by default) frames; dropping on the
 * first EAGAIN would turn every burst into TCP retransmissions. */
#define PORT_QUEUE_MAX 512

struct sw;
struct tap_port;

struct port {
        struct sw *sw;
        int id;
        bool up;
        uint64_t generation;
        int ctl_fd;
        int data_fd;
        struct event *ev_ctl;
        struct event *ev_data;
        struct event *ev_write;
        uint8_t *q_buf[PORT_QUEUE_MAX];
        uint16_t q_len[PORT_QUEUE_MAX];
        size_t q_head, q_n;
        char machine[NAME_MAX_LEN + 1];
        struct tap_port *tap; /* NULL for a VDE port */
        uint64_t rx, tx, dropped;
};

/* A machine's TAP: a port while the interface exists (in our namespace or
 * the container's), a retry timer while it is being re-created. */
struct tap_port {
        struct sw *sw;
        char ifname[SWITCH_TAP_NAME_MAX + 1];
        char machine[NAME_MAX_LEN + 1];
        int port; /* -1 while there is no interface */
        unsigned attempts;
        int last_error;
        uint64_t recreated;
        struct event *ev_retry;
};

struct conn {
        struct sw *sw;
        int fd;
        struct event *ev;
        uint8_t buf[512];
        size_t len;
};

struct delayed {
        struct sw *sw;
        int port;
        uint64_t generation;
        struct event *ev;
        size_t len;
        uint8_t data[];
};

struct known_machine {
        uint8_t mac[6];
        char name[NAME_MAX_LEN + 1];
};

struct sw {
        struct worker *w;
        int nr;
        char socket_dir[96]; /* leaves room for "/port255" in a 108-byte sun_path */
        char pcap_path[4096];
        int listen_fd;
        int pcap_fd;
        struct event *ev_listen;
        struct port ports[SWITCH_PORTS_MAX];
        struct mac_table macs;
        struct link_rules rules;
        struct known_machine known[KNOWN_MACHINES_MAX];
        size_t n_known;
        struct tap_port taps[KNOWN_MACHINES_MAX];
        size_t n_taps;
        size_t n_delayed;
        uint64_t generation;
        uint64_t frames, bytes, oversized;
        uint8_t frame[SWITCH_FRAME_MAX + 1];
};

static void port_fd_names(int id, char *c, char *d, size_t size) {
        snprintf(c, size, "p%dc", id);
        snprintf(d, size, "p%dd", id);
}

static void tap_fd_name(const struct tap_port *t, char *buf, size_t size) {
        snprintf(buf, size, "tap:%s", t->ifname);
}

static void tap_schedule(struct tap_port *t);

static void port_data_path(const struct sw *s, int id, char *buf, size_t size) {
        snprintf(buf, size, "%.95s/port%d", s->socket_dir, id);
}

static const char *machine_of_mac(const struct sw *s, const uint8_t *mac) {
        for (size_t i = 0; i < s->n_known; i++)
                if (memcmp(s->known[i].mac, mac, 6) == 0)
                        return s->known[i].name;
        return NULL;
}

static bool machine_known(const struct sw *s, const char *name) {
        if (!*name)
                return true;
        for (size_t i = 0; i < s->n_known; i++)
                if (streq(s->known[i].name, name))
                        return true;
        return false;
}

static void port_close(struct port *p, const char *why) {
        struct sw *s = p->sw;
        struct tap_port *tap = p->tap;
        char c[32], d[32], path[300];

        if (!p->up)
                return;
        if (tap)
                log_info("vlan %d: port %d (TAP %s of %s) closed: %s", s->nr, p->id, tap->ifname, tap->machine, why);
        else
                log_info("vlan %d: port %d (%s) closed: %s", s->nr, p->id,
                         *p->machine ? p->machine : "unknown machine", why);
        if (p->ev_ctl)
                event_free(p->ev_ctl);
        if (p->ev_data)
                event_free(p->ev_data);
        if (p->ev_write)
                event_free(p->ev_write);
        for (size_t i = 0; i < p->q_n; i++)
                free(p->q_buf[(p->q_head + i) % PORT_QUEUE_MAX]);
        safe_close(p->ctl_fd);
        safe_close(p->data_fd);
        if (tap) {
                tap_fd_name(tap, c, sizeof(c));
                (void) worker_forget_fd(s->w, c);
        } else {
                port_fd_names(p->id, c, d, sizeof(c));
                (void) worker_forget_fd(s->w, c);
                (void) worker_forget_fd(s->w, d);
                port_data_path(s, p->id, path, sizeof(path));
                (void) unlink(path);
        }
        mac_table_forget_port(&s->macs, p->id);
        *p = (struct port){.sw = s, .id = p->id, .ctl_fd = -EBADF, .data_fd = -EBADF};
        if (tap) {
                tap->port = -1;
                tap_schedule(tap);
        }
}

/* One frame out of a port: a datagram on a VDE port, a write() on a TAP
 * (which never blocks: the kernel takes the frame into its stack or drops it). */
static ssize_t port_write(const struct port *p, const uint8_t *data, size_t len) {
        if (p->tap)
                return write(p->data_fd, data, len);
        return send(p->data_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static bool port_enqueue(struct port *p, const uint8_t *data, size_t len) {
        uint8_t *copy;

        if (p->q_n >= PORT_QUEUE_MAX || !(copy = malloc(len)))
                return false;
        memcpy(copy, data, len);
        p->q_buf[(p->q_head + p->q_n) % PORT_QUEUE_MAX] = copy;
        p->q_len[(p->q_head + p->q_n) % PORT_QUEUE_MAX] = (uint16_t) len;
        if (p->q_n++ == 0)
                (void) event_add(p->ev_write, NULL);
        return true;
}

static void port_send(struct port *p, const uint8_t *data, size_t len) {
        if (p->q_n == 0) {
                if (port_write(p, data, len) >= 0) {
                        p->tx++;
                        return;
                }
                if (errno != EAGAIN) {
                        p->dropped++;
                        return;
                }
        }
        if (!port_enqueue(p, data, len))
                p->dropped++;
}

static void write_cb(evutil_socket_t fd, short what, void *arg) {
        struct port *p = arg;

        while (p->q_n > 0) {
                uint8_t *b = p->q_buf[p->q_head];

                if (port_write(p, b, p->q_len[p->q_head]) < 0) {
                        if (errno == EAGAIN)
                                return;
                        p->dropped++;
                } else
                        p->tx++;
                free(b);
                p->q_head = (p->q_head + 1) % PORT_QUEUE_MAX;
                p->q_n--;
        }
        (void) event_del(p->ev_write);
}

static void delayed_cb(evutil_socket_t fd, short what, void *arg) {
        struct delayed *d = arg;
        struct port *p = &d->sw->ports[d->port];

        if (p->up && p->generation == d->generation)
                port_send(p, d->data, d->len);
        d->sw->n_delayed--;
        event_free(d->ev);
        free(d);
}

static void port_delay(struct sw *s, struct port *p, const uint8_t *data, size_t len, uint64_t usec) {
        struct timeval tv = timeval_from_usec(usec);
        struct delayed *d;

        if (s->n_delayed >= DELAYED_FRAMES_MAX) {
                p->dropped++;
                return;
        }
        d = malloc(sizeof(*d) + len);
        if (!d) {
                p->dropped++;
                return;
        }
        *d = (struct delayed){.sw = s, .port = p->id, .generation = p->generation, .len = len};
        memcpy(d->data, data, len);
        d->ev = evtimer_new(worker_event_base(s->w), delayed_cb, d);
        if (!d->ev || evtimer_add(d->ev, &tv) < 0) {
                if (d->ev)
                        event_free(d->ev);
                free(d);
                p->dropped++;
                return;
        }
        s->n_delayed++;
}

static void pcap_write(struct sw *s, const uint8_t *data, size_t len) {
        uint8_t hdr[PCAP_RECORD_HEADER_LEN];
        struct timespec ts;
        struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *) data, len}};

        if (s->pcap_fd < 0)
                return;
        clock_gettime(CLOCK_REALTIME, &ts);
        pcap_record_header(hdr, (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000, len);
        if (writev(s->pcap_fd, iov, 2) < 0) {
                log_warning("vlan %d: cannot write %s: %m, stopping the capture", s->nr, s->pcap_path);
                s->pcap_fd = safe_close(s->pcap_fd);
        }
}

static void switch_frame(struct sw *s, struct port *in, size_t len) {
        bool up[SWITCH_PORTS_MAX];
        int out[SWITCH_PORTS_MAX];
        const char *src;
        size_t n;

        in->rx++;
        s->frames++;
        s->bytes += len;
        if (len < ETH_HEADER_LEN) {
                in->dropped++;
                return;
        }
        src = in->tap ? NULL : machine_of_mac(s, s->frame + 6); /* a TAP port is bound to its machine */
        if (src && !streq(in->machine, src))
                snprintf(in->machine, sizeof(in->machine), "%s", src);
        pcap_write(s, s->frame, len);

        for (size_t i = 0; i < SWITCH_PORTS_MAX; i++)
                up[i] = s->ports[i].up;
        n = mac_table_forward(&s->macs, in->id, s->frame, len, now_usec(), up, SWITCH_PORTS_MAX, out);
        for (size_t i = 0; i < n; i++) {
                struct port *e = &s->ports[out[i]];
                struct link_verdict v = link_rules_decide(&s->rules, in->machine, e->machine);

                if (v.copies == 0) {
                        e->dropped++;
                        continue;
                }
                for (unsigned c = 0; c < v.copies; c++)
                        if (v.delay_us)
                                port_delay(s, e, s->frame, len, v.delay_us);
                        else
                                port_send(e, s->frame, len);
        }
}

static void data_cb(evutil_socket_t fd, short what, void *arg) {
        struct port *p = arg;
        struct sw *s = p->sw;

        for (int i = 0; i < 64 && p->up; i++) {
                /* Both report a frame's full length when it does not fit (MSG_TRUNC;
                 * tun always does), so oversized frames are seen and dropped whole. */
                ssize_t n = p->tap ? read(fd, s->frame, sizeof(s->frame))
                                   : recv(fd, s->frame, sizeof(s->frame), MSG_DONTWAIT | MSG_TRUNC);

                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return;
                        if (errno == ECONNREFUSED && !p->tap)
                                return; /* the peer's socket went away; its control EOF follows */
                        if (errno == EBADFD && p->tap)
                                port_close(p, "the interface was deleted (the network namespace holding it died)");
                        else
                                port_close(p, strerror(errno));
                        return;
                }
                if (n == 0 && p->tap) {
                        port_close(p, "end of file on the TAP");
                        return;
                }
                if ((size_t) n > SWITCH_FRAME_MAX) {
                        s->oversized++;
                        p->dropped++;
                        continue;
                }
                switch_frame(s, p, (size_t) n);
        }
}

static void ctl_cb(evutil_socket_t fd, short what, void *arg) {
        struct port *p = arg;
        char junk[256];
        ssize_t n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);

        if (n == 0)
                port_close(p, "peer closed its control connection");
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
                port_close(p, strerror(errno));
}

/* A VDE port has a control connection (its EOF ends the port); a TAP port
 * (@tap set, @ctl_fd = -EBADF) ends when its interface does. */
static int port_activate(struct sw *s, int id, int ctl_fd, int data_fd, struct tap_port *tap) {
        struct port *p = &s->ports[id];
        struct event_base *b = worker_event_base(s->w);

        *p = (struct port){.sw = s,
                           .id = id,
                           .up = true,
                           .generation = ++s->generation,
                           .ctl_fd = ctl_fd,
                           .data_fd = data_fd,
                           .tap = tap};
        if (tap) {
                snprintf(p->machine, sizeof(p->machine), "%s", tap->machine);
                tap->port = id;
        }
        if (ctl_fd >= 0)
                p->ev_ctl = event_new(b, ctl_fd, EV_READ | EV_PERSIST, ctl_cb, p);
        p->ev_data = event_new(b, data_fd, EV_READ | EV_PERSIST, data_cb, p);
        p->ev_write = event_new(b, data_fd, EV_WRITE | EV_PERSIST, write_cb, p);
        if ((ctl_fd >= 0 && (!p->ev_ctl || event_add(p->ev_ctl, NULL) < 0)) || !p->ev_data || !p->ev_write ||
            event_add(p->ev_data, NULL) < 0) {
                port_close(p, "out of memory");
                return -ENOMEM;
        }
        return 0;
}

static int port_pick(const struct sw *s, int wanted) {
        if (wanted > 0 && wanted < SWITCH_PORTS_MAX && !s->ports[wanted].up)
                return wanted;
        for (int i = 1; i < SWITCH_PORTS_MAX; i++)
                if (!s->ports[i].up)
                        return i;
        return -ENOSPC;
}

/* Make @fd (owned) the port of @t. @store: hand it to the fd store (a new
 * interface); a restored fd is already there. */
static int tap_attach(struct tap_port *t, int fd, bool store) {
        _cleanup_close_ int tfd = fd;
        struct sw *s = t->sw;
        char name[32];
        int id = port_pick(s, 0), r;

        if (id < 0)
                return log_warning_errno(id, "vlan %d: no free port for TAP %s", s->nr, t->ifname);
        if (store) {
                tap_fd_name(t, name, sizeof(name));
                r = worker_store_fd(s->w, name, tfd);
                if (r < 0)
                        return log_warning_errno(r, "vlan %d: cannot store TAP %s's fd", s->nr, t->ifname);
        }
        return port_activate(s, id, -EBADF, TAKE_FD(tfd), t);
}

/* Errors no retry can fix: the privilege or the driver is missing. */
static bool tap_error_fatal(int r) {
        return r == -EPERM || r == -EACCES || r == -ENOENT || r == -ENODEV;
}

/* At start, a name that another process's TAP (EBUSY) or another kind of
 * interface (EINVAL) holds is refused too: the machine worker looks the TAP
 * up by name, and must never hand a container an interface that is not this
 * switch's (another run's TAP would cross-wire two runs' networks). */
static bool tap_error_fatal_at_start(int r) {
        return tap_error_fatal(r) || r == -EBUSY || r == -EINVAL || r == -EEXIST;
}

static void tap_retry_cb(evutil_socket_t fd_unused, short what, void *arg) {
        struct tap_port *t = arg;
        struct sw *s = t->sw;
        struct timeval tv;
        uint64_t delay;
        int fd = -EBADF, r;

        r = tap_open(t->ifname, &fd);
        if (r >= 0) {
                r = tap_attach(t, fd, true);
                if (r >= 0) {
                        t->recreated++;
                        log_notice("vlan %d: TAP %s of %s re-created (attempt %u)", s->nr, t->ifname, t->machine,
                                   t->attempts + 1);
                        (void) worker_send_event(s->w, "tap_recreated", "vlan %d: TAP %s of %s re-created", s->nr,
                                                 t->ifname, t->machine);
                        t->attempts = 0;
                        t->last_error = 0;
                        return;
                }
        }
        if (tap_error_fatal(r)) {
                log_error_errno(r, "vlan %d: cannot re-create TAP %s of %s, giving up (%m): %s", s->nr, t->ifname,
                                t->machine, tap_error_hint(r));
                return;
        }
        delay = tap_retry_delay_usec(++t->attempts);
        if (delay == 0) {
                log_error_errno(r, "vlan %d: cannot re-create TAP %s of %s after %u attempts, giving up (%m): %s",
                                s->nr, t->ifname, t->machine, t->attempts, tap_error_hint(r));
                return;
        }
        if (r != t->last_error) /* one line per kind of failure, not per attempt */
                log_warning_errno(r, "vlan %d: cannot re-create TAP %s of %s yet (%m), retrying: %s", s->nr, t->ifname,
                                  t->machine, tap_error_hint(r));
        t->last_error = r;
        tv = timeval_from_usec(delay);
        (void) evtimer_add(t->ev_retry, &tv);
}

/* The interface is gone (or could not be made): try again soon. A container
 * restarting on this machine waits for the name to reappear in our namespace. */
static void tap_schedule(struct tap_port *t) {
        uint64_t delay = tap_retry_delay_usec(0);
        struct timeval tv = timeval_from_usec(delay);

        t->attempts = 0;
        t->last_error = 0;
        if (t->ev_retry)
                (void) evtimer_add(t->ev_retry, &tv);
}

/* At start: a TAP for every machine that has one. Missing privileges, a
 * missing tun driver or a name in use fail the configuration; anything else
 * is retried like a vanished interface. */
static int taps_start(struct sw *s, bool restored) {
        for (size_t i = 0; i < s->n_taps; i++) {
                struct tap_port *t = &s->taps[i];
                char name[32];
                int fd = -EBADF, r;

                t->ev_retry = evtimer_new(worker_event_base(s->w), tap_retry_cb, t);
                if (!t->ev_retry)
                        return -ENOMEM;
                tap_fd_name(t, name, sizeof(name));
                fd = restored ? worker_take_fd(s->w, name) : -ENOENT;
                if (fd >= 0) {
                        /* Still ours even if the interface died meanwhile: its
                         * EBADFD then closes the port and re-creates it. */
                        (void) fd_set_nonblock(fd, 1);
                        r = tap_attach(t, fd, false);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = tap_open(t->ifname, &fd);
                if (r >= 0)
                        r = tap_attach(t, fd, true);
                if (r >= 0) {
                        log_info("vlan %d: TAP %s is %s's port %d", s->nr, t->ifname, t->machine, t->port);
                        continue;
                }
                if (tap_error_fatal_at_start(r)) {
                        log_error("vlan %d: cannot create TAP %s for machine %s (%s): %s", s->nr, t->ifname,
                                  t->machine, strerror(-r), tap_error_hint(r));
                        return -EINVAL; /* no restart can fix it */
                }
                log_warning_errno(r, "vlan %d: cannot create TAP %s for machine %s yet (%m), retrying: %s", s->nr,
                                  t->ifname, t->machine, tap_error_hint(r));
                tap_schedule(t);
                t->last_error = r; /* said once here, not again by the first retry */
        }
        return 0;
}

/* Answer a complete VDE request: a data socket connected to the client's. */
static int conn_finish(struct conn *c) {
        struct sw *s = c->sw;
        struct vde_request req;
        struct sockaddr_un ours = {.sun_family = AF_UNIX}, theirs = {.sun_family = AF_UNIX};
        _cleanup_close_ int data = -EBADF;
        char cn[32], dn[32];
        int id, r;

        r = vde_request_parse(c->buf, c->len, &req);
        if (r < 0)
                return log_warning_errno(r, "vlan %d: malformed VDE handshake (%zu bytes), closing it", s->nr, c->len);
        id = port_pick(s, req.port);
        if (id < 0)
                return log_warning_errno(id, "vlan %d: no free port for '%s'", s->nr, req.description);
        data = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (data < 0)
                return negative_errno();
        port_data_path(s, id, ours.sun_path, sizeof(ours.sun_path));
        (void) unlink(ours.sun_path);
        if (bind(data, (struct sockaddr *) &ours, sizeof(ours)) < 0)
                return log_warning_errno(negative_errno(), "vlan %d: cannot bind %s", s->nr, ours.sun_path);
        snprintf(theirs.sun_path, sizeof(theirs.sun_path), "%s", req.path);
        if (connect(data, (struct sockaddr *) &theirs, sizeof(theirs)) < 0)
                return log_warning_errno(negative_errno(), "vlan %d: cannot reach the client's socket %s", s->nr,
                                         req.path);
        if (send(c->fd, &ours, sizeof(ours), MSG_NOSIGNAL) != (ssize_t) sizeof(ours))
                return log_warning_errno(-EIO, "vlan %d: cannot answer the VDE handshake", s->nr);

        port_fd_names(id, cn, dn, sizeof(cn));
        r = worker_store_fd(s->w, cn, c->fd);
        if (r >= 0)
                r = worker_store_fd(s->w, dn, data);
        if (r < 0)
                return log_warning_errno(r, "vlan %d: cannot store port %d's fds", s->nr, id);
        r = port_activate(s, id, TAKE_FD(c->fd), TAKE_FD(data), NULL);
        if (r >= 0)
                log_info("vlan %d: port %d connected (%s)", s->nr, id, req.description);
        return r;
}

static void conn_free(struct conn *c) {
        if (c->ev)
                event_free(c->ev);
        safe_close(c->fd);
        free(c);
}

static void conn_cb(evutil_socket_t fd, short what, void *arg) {
        struct conn *c = arg;
        ssize_t n;

        if (what & EV_TIMEOUT) {
                log_warning("vlan %d: VDE handshake timed out after %d s", c->sw->nr, VDE_HANDSHAKE_TIMEOUT_SEC);
                conn_free(c);
                return;
        }
        n = recv(fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                conn_free(c);
                return;
        }
        c->len += (size_t) n;
        if (c->len < VDE_REQUEST_MIN)
                return;
        (void) conn_finish(c);
        conn_free(c); /* its fd moved into the port on success */
}

static void listen_cb(evutil_socket_t fd, short what, void *arg) {
        struct sw *s = arg;
        struct timeval tv = {VDE_HANDSHAKE_TIMEOUT_SEC, 0};
        struct conn *c;
        int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (cfd < 0)
                return;
        c = calloc(1, sizeof(*c));
        if (!c) {
                close(cfd);
                return;
        }
        *c = (struct conn){.sw = s, .fd = cfd};
        c->ev = event_new(worker_event_base(s->w), cfd, EV_READ | EV_PERSIST | EV_TIMEOUT, conn_cb, c);
        if (!c->ev || event_add(c->ev, &tv) < 0)
                conn_free(c);
}

static int listen_start(struct sw *s, int fd) {
        s->listen_fd = fd;
        s->ev_listen = event_new(worker_event_base(s->w), fd, EV_READ | EV_PERSIST, listen_cb, s);
        if (!s->ev_listen || event_add(s->ev_listen, NULL) < 0)
                return -ENOMEM;
        return 0;
}

static int listen_create(struct sw *s) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (mkdir(s->socket_dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(negative_errno(), "vlan %d: cannot create %s", s->nr, s->socket_dir);
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%.95s/ctl", s->socket_dir);
        (void) unlink(sun.sun_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sun, sizeof(sun)) < 0 || listen(fd, 64) < 0)
                return log_error_errno(negative_errno(), "vlan %d: cannot listen on %s", s->nr, sun.sun_path);
        r = worker_store_fd(s->w, "listen", fd);
        if (r < 0)
                return r;
        return listen_start(s, TAKE_FD(fd));
}

/* Where the last whole record ends. The file is only ever appended to by one
 * switch at a time, so anything after that is a record cut short by SIGKILL
 * (a write to a file is interruptible by a fatal signal between pages). */
static uint64_t pcap_whole_prefix(int fd, uint64_t size) {
        uint64_t off = PCAP_FILE_HEADER_LEN;

        while (off < size) {
                uint8_t h[PCAP_RECORD_HEADER_LEN];
                size_t span;

                if (pread(fd, h, sizeof(h), (off_t) off) != (ssize_t) sizeof(h))
                        break;
                span = pcap_record_span(h, size - off);
                if (span == 0)
                        break;
                off += span;
        }
        return MIN(off, size);
}

static int pcap_open(struct sw *s) {
        struct stat st;

        s->pcap_fd = open(s->pcap_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (s->pcap_fd < 0)
                return log_warning_errno(negative_errno(), "vlan %d: cannot open %s, no capture", s->nr, s->pcap_path);
        if (fstat(s->pcap_fd, &st) < 0) {
                s->pcap_fd = safe_close(s->pcap_fd);
                return 0;
        }
        if (st.st_size == 0) {
                uint8_t h[PCAP_FILE_HEADER_LEN];
                pcap_file_header(h);
                if (write(s->pcap_fd, h, sizeof(h)) != (ssize_t) sizeof(h))
                        s->pcap_fd = safe_close(s->pcap_fd);
        } else if (st.st_size >= PCAP_FILE_HEADER_LEN) {
                uint64_t whole = pcap_whole_prefix(s->pcap_fd, (uint64_t) st.st_size);

                if (whole < (uint64_t) st.st_size && ftruncate(s->pcap_fd, (off_t) whole) == 0)
                        log_notice("vlan %d: cut %llu byte(s) of a record left half-written in %s", s->nr,
                                   (unsigned long long) ((uint64_t) st.st_size - whole), s->pcap_path);
        }
        return 0;
}

static int parse_mac(const char *s, uint8_t out[6]) {
        unsigned b[6];

        if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
                return -EINVAL;
        for (int i = 0; i < 6; i++)
                out[i] = (uint8_t) b[i];
        return 0;
}

/* The config's keys and types are the shared contract's (proto/worker-config.h);
 * what is checked here is this switch's own: its fixed-size tables. */
static int switch_parse_config(struct sw *s, const char *json) {
        _cleanup_(switch_config_donep) struct switch_config c = {};
        char error[WORKER_CONFIG_ERROR_MAX];
        int r;

        r = worker_config_switch_parse(json, &c, error, sizeof error);
        if (r < 0)
                return log_error_errno(r, "%s", r == -EINVAL ? error : "switch config: out of memory");
        s->nr = (int) c.vlan;
        if (strlen(c.socket_dir) >= sizeof(s->socket_dir) - 1)
                return log_error_errno(-EINVAL, "switch socket_dir %s is too long for unix socket paths",
                                       c.socket_dir);
        snprintf(s->socket_dir, sizeof(s->socket_dir), "%s", c.socket_dir);
        if (c.out_dir && c.pcap)
                snprintf(s->pcap_path, sizeof(s->pcap_path), "%s/vlan%d.pcap", c.out_dir, s->nr);
        for (size_t i = 0; i < c.n_machines && s->n_known < KNOWN_MACHINES_MAX; i++) {
                const struct switch_machine *m = &c.machines[i];
                struct known_machine *k = &s->known[s->n_known];

                if (parse_mac(m->mac, k->mac) < 0)
                        return log_error_errno(-EINVAL, "switch config: machines[%zu].mac \"%s\" is not a MAC address",
                                               i, m->mac);
                snprintf(k->name, sizeof(k->name), "%s", m->name);
                s->n_known++;
                if (m->tap) {
                        struct tap_port *t = &s->taps[s->n_taps];

                        if (!tap_name_valid(m->tap))
                                return log_error_errno(-EINVAL,
                                                       "switch config: machines[%zu].tap is not an interface "
                                                       "name (1-%d bytes, no '/', ':' or blanks)",
                                                       i, SWITCH_TAP_NAME_MAX);
                        for (size_t o2 = 0; o2 < s->n_taps; o2++)
                                if (streq(s->taps[o2].ifname, m->tap))
                                        return log_error_errno(-EINVAL,
                                                               "switch config: TAP %s is given to both %s and %s",
                                                               m->tap, s->taps[o2].machine, k->name);
                        *t = (struct tap_port){.sw = s, .port = -1};
                        snprintf(t->ifname, sizeof(t->ifname), "%s", m->tap);
                        memcpy(t->machine, k->name, sizeof(t->machine)); /* same size, NUL-terminated */
                        s->n_taps++;
                }
        }
        return 0;
}

/* After a restart: take back the listening socket and every port. */
static int switch_reattach(struct sw *s) {
        int fd = worker_take_fd(s->w, "listen"), n = 0, r;

        if (fd < 0)
                return log_error_errno(fd, "vlan %d: restarted without its listening socket", s->nr);
        r = listen_start(s, fd);
        if (r < 0)
                return r;
        for (int id = 0; id < SWITCH_PORTS_MAX; id++) {
                char cn[32], dn[32];
                int c, d;

                port_fd_names(id, cn, dn, sizeof(cn));
                c = worker_take_fd(s->w, cn);
                d = worker_take_fd(s->w, dn);
                if (c < 0 || d < 0) {
                        safe_close(c);
                        safe_close(d);
                        continue;
                }
                (void) fd_set_nonblock(c, 1);
                (void) fd_set_nonblock(d, 1);
                r = port_activate(s, id, c, d, NULL);
                if (r < 0)
                        return r;
                n++;
        }
        /* TAP ports after the VDE ones: those keep their numbers, TAPs take free ones. */
        r = taps_start(s, true);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_taps; i++)
                n += s->taps[i].port >= 0;
        log_info("vlan %d: switch re-attached to %d port(s)", s->nr, n);
        return 0;
}

static int switch_configure(struct worker *w, const struct msg_config *cfg, void *userdata) {
        struct sw *s = userdata;
        int r;

        s->w = w;
        s->listen_fd = -EBADF;
        s->pcap_fd = -EBADF;
        for (int i = 0; i < SWITCH_PORTS_MAX; i++)
                s->ports[i] = (struct port){.sw = s, .id = i, .ctl_fd = -EBADF, .data_fd = -EBADF};
        link_rules_init(&s->rules, (uint64_t) getpid() ^ now_usec());
        r = switch_parse_config(s, cfg->json);
        if (r < 0)
                return r;
        {
                char v[16];
                snprintf(v, sizeof(v), "%d", s->nr);
                log_set_field("VIGIL_VLAN", v);
        }
        if (s->pcap_path[0])
                (void) pcap_open(s);
        if (worker_restarts(w) > 0)
                r = switch_reattach(s);
        else {
                r = listen_create(s);
                if (r >= 0)
                        r = taps_start(s, false);
        }
        if (r < 0)
                return r;
        log_info("vlan %d: switch ready on %s/ctl", s->nr, s->socket_dir);
        return worker_send_ready(w);
}

static int on_set_link(struct sw *s, const struct frame *f) {
        const struct msg_w_set_link *m = f->body;
        struct link_rule rule = {.drop = m->drop,
                                 .loss_ppm = (uint32_t) MIN(m->loss_ppm, 2000000u),
                                 .dup_ppm = (uint32_t) MIN(m->dup_ppm, 2000000u),
                                 .delay_us = m->delay_us,
                                 .jitter_us = m->jitter_us};
        int r;

        if (!machine_known(s, m->from) || !machine_known(s, m->to))
                return peer_send_error(worker_peer(s->w), f->seq, -ENOENT, "no machine '%s' on vlan %d",
                                       machine_known(s, m->from) ? m->to : m->from, s->nr);
        if (m->delay_us > 60 * USEC_PER_SEC || m->jitter_us > 60 * USEC_PER_SEC)
                return peer_send_error(worker_peer(s->w), f->seq, -EINVAL, "delay and jitter are limited to 60 s");
        snprintf(rule.from, sizeof(rule.from), "%s", m->from);
        snprintf(rule.to, sizeof(rule.to), "%s", m->to);
        r = link_rules_set(&s->rules, &rule);
        if (r >= 0 && m->both) {
                snprintf(rule.from, sizeof(rule.from), "%s", m->to);
                snprintf(rule.to, sizeof(rule.to), "%s", m->from);
                r = link_rules_set(&s->rules, &rule);
        }
        if (r < 0)
                return peer_send_error(worker_peer(s->w), f->seq, r, "cannot set the link rule: %s",
                                       r == -EINVAL ? "a probability is above 1" : "too many rules");
        log_notice("vlan %d: link %s %s %s: %s loss=%llu ppm dup=%llu ppm delay=%llu us jitter=%llu us", s->nr,
                   *m->from ? m->from : "*", m->both ? "<->" : "->", *m->to ? m->to : "*",
                   m->drop ? "blocked" : "open", (unsigned long long) m->loss_ppm, (unsigned long long) m->dup_ppm,
                   (unsigned long long) m->delay_us, (unsigned long long) m->jitter_us);
        return peer_send_ok(worker_peer(s->w), f->seq);
}

static int on_clear(struct sw *s, const struct frame *f) {
        const struct msg_w_clear *m = f->body;
        size_t n = link_rules_clear(&s->rules, m->from, m->to);

        if (m->both && (*m->from || *m->to))
                n += link_rules_clear(&s->rules, m->to, m->from);
        log_notice("vlan %d: cleared %zu link rule(s) %s %s %s", s->nr, n, *m->from ? m->from : "*",
                   m->both ? "<->" : "->", *m->to ? m->to : "*");
        return peer_send_ok(worker_peer(s->w), f->seq);
}

static int on_stats(struct sw *s, const struct frame *f) {
        _cleanup_json_ json_object *j = json_object_new_object();
        json_object *ports = json_object_new_array(), *taps = json_object_new_array();
        const char *text;
        int r;

        json_object_object_add(j, "vlan", json_object_new_int(s->nr));
        json_object_object_add(j, "frames", json_object_new_int64((int64_t) s->frames));
        json_object_object_add(j, "bytes", json_object_new_int64((int64_t) s->bytes));
        json_object_object_add(j, "oversized", json_object_new_int64((int64_t) s->oversized));
        json_object_object_add(j, "rules", json_object_new_int((int) s->rules.n));
        for (int i = 0; i < SWITCH_PORTS_MAX; i++) {
                const struct port *p = &s->ports[i];
                json_object *o;
                if (!p->up)
                        continue;
                o = json_object_new_object();
                json_object_object_add(o, "port", json_object_new_int(i));
                json_object_object_add(o, "machine", json_object_new_string(p->machine));
                if (p->tap)
                        json_object_object_add(o, "tap", json_object_new_string(p->tap->ifname));
                json_object_object_add(o, "rx", json_object_new_int64((int64_t) p->rx));
                json_object_object_add(o, "tx", json_object_new_int64((int64_t) p->tx));
                json_object_object_add(o, "dropped", json_object_new_int64((int64_t) p->dropped));
                json_object_array_add(ports, o);
        }
        json_object_object_add(j, "ports", ports);
        for (size_t i = 0; i < s->n_taps; i++) {
                const struct tap_port *t = &s->taps[i];
                json_object *o = json_object_new_object();

                json_object_object_add(o, "name", json_object_new_string(t->ifname));
                json_object_object_add(o, "machine", json_object_new_string(t->machine));
                json_object_object_add(o, "port", json_object_new_int(t->port));
                json_object_object_add(o, "recreated", json_object_new_int64((int64_t) t->recreated));
                json_object_array_add(taps, o);
        }
        json_object_object_add(j, "taps", taps);
        text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
        r = peer_send_chunks(worker_peer(s->w), f->seq, (const uint8_t *) text, strlen(text));
        if (r < 0)
                return r;
        return peer_send(worker_peer(s->w), MSG_M_TEXT_RESULT, f->seq,
                         &(struct msg_m_text_result){.length = strlen(text)}, NULL, 0);
}

typedef int (*switch_handler)(struct sw *s, const struct frame *f);

/* Indexed by message type; an empty slot is a message no switch accepts. */
static const switch_handler switch_handlers[] = {
        [MSG_W_SET_LINK] = on_set_link,
        [MSG_W_CLEAR] = on_clear,
        [MSG_W_STATS] = on_stats,
};

static int switch_on_frame(struct worker *w, const struct frame *f, int *fds, size_t n_fds, void *userdata) {
        if (f->type <= 0 || (size_t) f->type >= ELEMENTSOF(switch_handlers) || !switch_handlers[f->type])
                return -EBADMSG; /* nothing else is addressed to a switch */
        return switch_handlers[f->type](userdata, f);
}

static void switch_on_exit(struct worker *w, void *userdata) {
        struct sw *s = userdata;

        /* Leave the ports' sockets to the fd store: a restart takes them back. */
        for (int i = 0; i < SWITCH_PORTS_MAX; i++) {
                if (s->ports[i].ev_ctl)
                        event_free(s->ports[i].ev_ctl);
                if (s->ports[i].ev_data)
                        event_free(s->ports[i].ev_data);
                if (s->ports[i].ev_write)
                        event_free(s->ports[i].ev_write);
                safe_close(s->ports[i].ctl_fd);
                safe_close(s->ports[i].data_fd);
        }
        for (size_t i = 0; i < s->n_taps; i++)
                if (s->taps[i].ev_retry)
                        event_free(s->taps[i].ev_retry);
        if (s->ev_listen)
                event_free(s->ev_listen);
        safe_close(s->listen_fd);
        safe_close(s->pcap_fd);
}

int main(int argc, char **argv) {
        static struct sw s;
        static const struct worker_ops ops = {
                .kind = KIND_SWITCH,
                .configure = switch_configure,
                .on_frame = switch_on_frame,
                .on_exit = switch_on_exit,
        };

        return worker_main(argc, argv, &ops, &s);
}
