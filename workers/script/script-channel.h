/* SPDX-License-Identifier: MIT */
/*
 * script-channel.h: the script worker's blocking, thread-safe end of the
 * supervisor channel. Any thread may send a request and wait for its reply;
 * one reader thread reads every frame, answers PINGs and hands replies to
 * their waiters by seq. When the supervisor goes away every waiter wakes up
 * with -EPIPE.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "script-pending.h"

struct script_channel;

/* Cap on the bytes of one reply (command output, console lines, HMP text). */
#define SCRIPT_REPLY_MAX (64u * 1024u * 1024u)

/* Adopt @fd (blocking SOCK_SEQPACKET) and start the reader thread. A reply
 * larger than @reply_max bytes is cut and reported as overflow. */
int script_channel_start(int fd, size_t reply_max, struct script_channel **ret);

/* Send a request (body = the msg_* struct of @type) and register its seq.
 * The returned entry stays valid until script_channel_release(). */
int script_channel_send_request(struct script_channel *ch, int type, const void *body, struct script_pending **ret);

/* Wait until @p completes: 0 done (see p->error / p->final), -ETIMEDOUT after
 * @timeout_ms (< 0: no limit). */
int script_channel_wait(struct script_channel *ch, struct script_pending *p, int timeout_ms);

/* Free a completed entry, or abandon a waiting one (its reply is dropped). */
void script_channel_release(struct script_channel *ch, struct script_pending *p);

/* Send a frame that expects no reply (seq 0): EVENT, S_RESULT, READY. */
int script_channel_send(struct script_channel *ch, int type, const void *body);

/* 0 while the supervisor is there, else the negative errno it was lost with. */
int script_channel_lost(struct script_channel *ch, const char **ret_reason);
