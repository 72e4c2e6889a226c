/* SPDX-License-Identifier: MIT */
/*
 * nspawn-relay.h: the container's guest shell as one stream. Every boot of a
 * container (and every restart of its backdoor service) makes a new
 * connection to the backdoor socket, whereas the guest shell expects one
 * stream for the machine's life, like QEMU's virtconsole chardev. The shell
 * gets one end of a socketpair; the relay moves bytes between the other end
 * and whichever backdoor connection is current. Bytes sent while none is
 * connected are dropped, as a tty drops them with no reader.
 */
#pragma once

#include <event2/event.h>
#include <stdbool.h>

#include "machine-shell.h"

struct nspawn_relay;

struct nspawn_relay_ops {
        /* The current connection ended (@why); the relay already dropped it. */
        void (*lost)(void *userdata, const char *why);
};

int nspawn_relay_new(struct event_base *base, const struct nspawn_relay_ops *ops, void *userdata,
                     struct nspawn_relay **ret);
struct nspawn_relay *nspawn_relay_free(struct nspawn_relay *n);
/* Give @shell its end of a new socketpair and relay the other. */
int nspawn_relay_open(struct nspawn_relay *n, struct machine_shell *shell);
/* Close the socketpair end and the connection, dropping what was in flight. */
void nspawn_relay_close(struct nspawn_relay *n);
/* @fd is the current backdoor connection now (taken on success and failure). */
int nspawn_relay_adopt(struct nspawn_relay *n, int fd);
/* Close the current connection (quietly). */
void nspawn_relay_drop(struct nspawn_relay *n);
/* Pass on what the guest sent, close the connection, and tell ops->lost. */
void nspawn_relay_end(struct nspawn_relay *n, const char *why);
bool nspawn_relay_connected(const struct nspawn_relay *n);
/* The field holding the connection's fd, for the fd store's table. */
int *nspawn_relay_conn_fd(struct nspawn_relay *n);
