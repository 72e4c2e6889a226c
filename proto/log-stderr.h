/* SPDX-License-Identifier: MIT */
/*
 * log-stderr.h: the way vigil's human-readable lines reach stderr
 * (log-stderr.c). By default a record is written at once, blocking, as any
 * program does. A process that must never stall on a reader that does not
 * read (the supervisor) turns on the bounded mode: records go out through its
 * own non-blocking file description, wait in a queue of LOG_STDERR_QUEUE_MAX
 * bytes while the reader is slow, and are dropped whole once it is full (in
 * practice: once the reader has stopped, see log_stderr_congested()); one
 * line says how many were dropped and where the full record is.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOG_STDERR_QUEUE_MAX (512u * 1024u)

/* Bounded mode for this process, from now on (idempotent). @record ends the
 * "dropped" line, saying where the full record is (e.g. "the full record is in ...");
 * NULL keeps the one set before. Returns 0, or < 0 if stderr stays blocking. */
int log_stderr_bounded(const char *record);
bool log_stderr_is_bounded(void);

/* One record: @len bytes of whole lines (or one terminal update), written,
 * queued or dropped as one piece, never cut. */
void log_stderr_write(const char *text, size_t len);

/* More than half the queue waits, and the reader took bytes within the last
 * 2 s: a producer that can wait (the children's relay) should, rather than
 * have lines dropped. A reader that took nothing for 2 s has stopped: false. */
bool log_stderr_congested(void);

/* Write what stderr takes now. Returns 1 if records are still queued (the waiter
 * has been told), 0 if the queue is empty. */
int log_stderr_flush(void);

/* Called, with the queue's fd, when records wait: @writable true means "call
 * log_stderr_flush() once @fd is writable", false "call it again in a moment"
 * (a pipe with room, but not for the next record and the reserve kept for the
 * last "dropped" line). NULL: nobody drives the queue but new records and exit. */
void log_stderr_set_waiter(void (*fn)(int fd, bool writable, void *userdata), void *userdata);

/* At the end: wait for a slow reader while it keeps reading (at most
 * @idle_usec without progress), then drop what is left and say so. */
void log_stderr_drain(uint64_t idle_usec);

/* Lines dropped so far in this process (for tests and the end summary). */
uint64_t log_stderr_dropped_total(void);
