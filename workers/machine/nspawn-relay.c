/* SPDX-License-Identifier: MIT */
/*
 * nspawn-relay.c owns the byte relay between the guest shell's socketpair
 * and the container's current backdoor connection (see nspawn-relay.h), with
 * back-pressure both ways: a side whose buffer is full stops reading its
 * source until it drains.
 */
#include <event2/buffer.h>
#include <sys/socket.h>

#include "log.h"
#include "machine-util.h"
#include "nspawn-relay.h"

#define RELAY_MAX   (1024u * 1024u)
#define IO_READ_MAX (64u * 1024u)

struct nspawn_relay {
        struct event_base *base;
        const struct nspawn_relay_ops *ops;
        void *userdata;
        int conn_fd; /* the current backdoor connection */
        struct event *conn_ev;
        struct event *conn_wev;
        int relay_fd; /* our end of the socketpair whose other end the shell reads */
        struct event *relay_ev;
        struct event *relay_wev;
        struct evbuffer *to_guest;
        struct evbuffer *to_shell;
};

void nspawn_relay_drop(struct nspawn_relay *n) {
        machine_event_free(&n->conn_ev);
        machine_event_free(&n->conn_wev);
        n->conn_fd = safe_close(n->conn_fd);
        if (n->to_guest)
                (void) evbuffer_drain(n->to_guest, evbuffer_get_length(n->to_guest));
}

static void relay_flush(int fd, struct evbuffer *b, struct event *wev, struct event *src_ev) {
        while (evbuffer_get_length(b) > 0) {
                int k = evbuffer_write(b, fd);
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        break;
                if (k <= 0) {
                        (void) evbuffer_drain(b, evbuffer_get_length(b));
                        break;
                }
        }
        if (evbuffer_get_length(b) > 0) {
                (void) event_add(wev, NULL);
                /* Back-pressure: stop reading the source until this drains. */
                if (src_ev && evbuffer_get_length(b) >= RELAY_MAX)
                        (void) event_del(src_ev);
        } else {
                (void) event_del(wev);
                if (src_ev)
                        (void) event_add(src_ev, NULL);
        }
}

static void to_shell_flush(struct nspawn_relay *n) {
        if (n->relay_fd >= 0)
                relay_flush(n->relay_fd, n->to_shell, n->relay_wev, n->conn_ev);
}

static void to_guest_flush(struct nspawn_relay *n) {
        if (n->conn_fd >= 0)
                relay_flush(n->conn_fd, n->to_guest, n->conn_wev, n->relay_ev);
        else
                (void) evbuffer_drain(n->to_guest, evbuffer_get_length(n->to_guest));
}

/* machine-shell -> guest */
static void relay_read_cb(evutil_socket_t fd, short what, void *arg) {
        struct nspawn_relay *n = arg;
        int k = evbuffer_read(n->to_guest, fd, IO_READ_MAX);

        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (k <= 0) {
                /* machine-shell detached its end. */
                machine_event_free(&n->relay_ev);
                machine_event_free(&n->relay_wev);
                n->relay_fd = safe_close(n->relay_fd);
                return;
        }
        if (n->conn_fd < 0) {
                log_debug("Dropping %d bytes for the guest shell: no backdoor connection", k);
                (void) evbuffer_drain(n->to_guest, evbuffer_get_length(n->to_guest));
                return;
        }
        to_guest_flush(n);
}

static void relay_write_cb(evutil_socket_t fd, short what, void *arg) {
        to_shell_flush(arg);
}

/* guest -> machine-shell */
static void conn_read_cb(evutil_socket_t fd, short what, void *arg) {
        struct nspawn_relay *n = arg;
        int k = evbuffer_read(n->to_shell, fd, IO_READ_MAX);

        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (k < 0) {
                nspawn_relay_end(n, strerror(errno));
                return;
        }
        if (k == 0) {
                nspawn_relay_end(n, "end of file");
                return;
        }
        to_shell_flush(n);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg) {
        to_guest_flush(arg);
}

int nspawn_relay_adopt(struct nspawn_relay *n, int fd) {
        int r;

        nspawn_relay_drop(n);
        n->conn_fd = fd;
        if ((r = machine_event_watch(n->base, fd, EV_READ | EV_PERSIST, conn_read_cb, n, &n->conn_ev)) < 0 ||
            (r = machine_event_watch(n->base, fd, EV_WRITE, conn_write_cb, n, &n->conn_wev)) < 0)
                return r;
        return 0;
}

int nspawn_relay_open(struct nspawn_relay *n, struct machine_shell *shell) {
        int sp[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
                return negative_errno();
        n->relay_fd = sp[0];
        r = machine_shell_attach(shell, sp[1], -EBADF, NULL); /* the shell owns sp[1] now */
        if (r < 0) {
                safe_close(sp[1]);
                return r;
        }
        if ((r = machine_event_watch(n->base, n->relay_fd, EV_READ | EV_PERSIST, relay_read_cb, n, &n->relay_ev)) <
                    0 ||
            (r = machine_event_watch(n->base, n->relay_fd, EV_WRITE, relay_write_cb, n, &n->relay_wev)) < 0)
                return r;
        return 0;
}

void nspawn_relay_end(struct nspawn_relay *n, const char *why) {
        to_shell_flush(n);
        nspawn_relay_drop(n);
        n->ops->lost(n->userdata, why);
}

void nspawn_relay_close(struct nspawn_relay *n) {
        if (!n)
                return;
        nspawn_relay_drop(n);
        machine_event_free(&n->relay_ev);
        machine_event_free(&n->relay_wev);
        n->relay_fd = safe_close(n->relay_fd);
        (void) evbuffer_drain(n->to_shell, evbuffer_get_length(n->to_shell));
}

bool nspawn_relay_connected(const struct nspawn_relay *n) {
        return n->conn_fd >= 0;
}

int *nspawn_relay_conn_fd(struct nspawn_relay *n) {
        return &n->conn_fd;
}

int nspawn_relay_new(struct event_base *base, const struct nspawn_relay_ops *ops, void *userdata,
                     struct nspawn_relay **ret) {
        struct nspawn_relay *n = calloc(1, sizeof *n);

        if (!n)
                return -ENOMEM;
        n->base = base;
        n->ops = ops;
        n->userdata = userdata;
        n->conn_fd = n->relay_fd = -EBADF;
        n->to_guest = evbuffer_new();
        n->to_shell = evbuffer_new();
        if (!n->to_guest || !n->to_shell) {
                nspawn_relay_free(n);
                return -ENOMEM;
        }
        *ret = n;
        return 0;
}

struct nspawn_relay *nspawn_relay_free(struct nspawn_relay *n) {
        if (!n)
                return NULL;
        if (n->to_guest && n->to_shell)
                nspawn_relay_close(n);
        if (n->to_guest)
                evbuffer_free(n->to_guest);
        if (n->to_shell)
                evbuffer_free(n->to_shell);
        free(n);
        return NULL;
}
