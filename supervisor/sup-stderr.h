/* SPDX-License-Identifier: MIT */
/*
 * sup-stderr.h: the children's stderr, relayed by the supervisor through its
 * bounded stderr queue (sup-stderr.c, proto/log-stderr.c), so that no reader
 * that stops reading can stall a worker or the supervisor.
 */
#pragma once

#include <event2/event.h>

struct sup_stderr;

/* From now on this process writes stderr bounded, never blocking; the line
 * saying how many lines were dropped names where the full record is. */
void sup_stderr_bound(const char *run_id, const char *outdir);

/* *ret is NULL (children keep vigil's stderr) unless this process writes stderr
 * bounded (log_stderr_bounded()). */
int sup_stderr_new(struct event_base *base, struct sup_stderr **ret);
/* What a non-interactive child gets as its fd 2. */
int sup_stderr_child_fd(const struct sup_stderr *e);
/* Relay what the children wrote so far (before an event that follows it). */
void sup_stderr_pump(struct sup_stderr *e);
/* Relays what is left, stops driving the queue; NULL-safe, returns NULL. */
struct sup_stderr *sup_stderr_free(struct sup_stderr *e);
