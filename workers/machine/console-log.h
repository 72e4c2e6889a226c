/* SPDX-License-Identifier: MIT */
/*
 * console-log.h owns what happens to a guest's serial console bytes before
 * they reach a file, the journal or a script: splitting into lines exactly like
 * the reference driver (§2.6: invalid UTF-8 dropped, every '\r' removed,
 * trailing whitespace stripped), a line-length cap, a bounded ring of recent
 * lines with absolute indices (for wait_for_console_text, which reads from an
 * index; older lines live only in the log file), and a token bucket that
 * rate-limits console lines sent to the journal. Pure code.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONSOLE_LINE_MAX_DEFAULT   (16u * 1024u)
#define CONSOLE_RING_LINES_DEFAULT 20000u
#define CONSOLE_RING_BYTES_DEFAULT (8u * 1024u * 1024u)

/* ---- line splitting ---- */

struct console_splitter {
        char *partial; /* raw bytes of the unfinished line */
        size_t len;
        size_t line_max; /* a raw line longer than this is cut into pieces */
};

int console_splitter_init(struct console_splitter *s, size_t line_max);
void console_splitter_done(struct console_splitter *s);

/* Called once per finished line; @line is NUL-terminated cleaned text. Return
 * < 0 to stop feeding (the error is returned by console_splitter_feed). */
typedef int (*console_line_fn)(const char *line, size_t len, void *userdata);

int console_splitter_feed(struct console_splitter *s, const uint8_t *buf, size_t len, console_line_fn fn,
                          void *userdata);
/* At EOF: emit an unfinished last line, if any (the reference's line iterator does too). */
int console_splitter_finish(struct console_splitter *s, console_line_fn fn, void *userdata);

/* The reference cleaning of one raw line, in place: decode(errors="ignore"),
 * replace("\r", ""), rstrip(). Returns the new length. */
size_t console_clean_line(char *line, size_t len);

/* ---- ring ---- */

struct console_ring {
        char **lines; /* circular, capacity max_lines */
        size_t *lens;
        size_t max_lines;
        size_t max_bytes;
        size_t head;    /* slot of the oldest line */
        size_t count;   /* lines held */
        size_t bytes;   /* bytes held */
        uint64_t first; /* absolute index of the oldest held line */
};

int console_ring_init(struct console_ring *r, size_t max_lines, size_t max_bytes);
void console_ring_done(struct console_ring *r);
int console_ring_push(struct console_ring *r, const char *line, size_t len);
/* Absolute index the next pushed line will get. */
uint64_t console_ring_end(const struct console_ring *r);
/* Start numbering at @index (after a restart, to continue where the log file ends). */
void console_ring_set_start(struct console_ring *r, uint64_t index);

/* Lines [from, end) joined, each followed by '\n', at most @max_bytes (but at
 * least one line when there is one). Lines older than the ring's oldest are
 * skipped: *ret_first says which index the text starts at (> from means a
 * gap). *ret_next is the index after the last returned line. */
int console_ring_read(const struct console_ring *r, uint64_t from, size_t max_bytes, char **ret_text, size_t *ret_len,
                      uint64_t *ret_first, uint64_t *ret_next);

/* ---- journal rate limit ---- */

struct console_ratelimit {
        uint64_t interval_usec;
        unsigned burst;
        uint64_t begin;
        unsigned n;
        uint64_t suppressed; /* since the last allowed line */
};

void console_ratelimit_init(struct console_ratelimit *rl, uint64_t interval_usec, unsigned burst);
/* True if a line may be logged now; *ret_suppressed gets (and resets) the
 * count of lines dropped before it. */
bool console_ratelimit_allow(struct console_ratelimit *rl, uint64_t now_usec, uint64_t *ret_suppressed);
