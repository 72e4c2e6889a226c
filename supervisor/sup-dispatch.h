/* SPDX-License-Identifier: MIT */
/*
 * sup-dispatch.h: what arrives on a worker's channel (the peer callbacks a
 * child's peer is created with), the restore handshake, and protocol errors.
 */
#pragma once

#include "macro.h"
#include "peer.h"

struct child;

extern const struct peer_ops dispatch_peer_ops;
/* PROC_LIST, FD_RESTORE, CONFIG, then the PROC_EXITs kept while it was down. */
void dispatch_handshake(struct child *c);
/* Log @c's protocol error once, count its exit as a crash, end its channel. */
void dispatch_protocol_error(struct child *c, const char *fmt, ...) _printf_(2, 3);
