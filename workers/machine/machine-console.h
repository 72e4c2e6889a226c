/* SPDX-License-Identifier: MIT */
/*
 * machine-console.h: the console of one machine as an opaque object. It owns
 * what the backend's console stream becomes: the lines (console-log.h's
 * splitter), the per-machine log file in the output dir, the rate-limited
 * journal lines, the ring of recent lines that wait_for_console_text reads
 * from an index, the reads waiting for lines not printed yet, and the last
 * hypervisor stderr lines for error messages. Backends feed it; the request
 * layer asks it for reads and learns the answers only through struct
 * machine_console_ops; it never calls the request layer.
 */
#pragma once

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct machine_console;

/* How a console read is answered, now or once lines arrive, the machine
 * stops or the read's timeout passes. */
struct machine_console_ops {
        /* Lines from the read's index on, joined with '\n'; @next_line is where
         * the next read should start. */
        void (*answer)(void *userdata, uint32_t seq, const char *text, size_t len, uint64_t next_line);
        /* The read failed (@error < 0, @message says why). */
        void (*answer_error)(void *userdata, uint32_t seq, int error, const char *message);
};

struct machine_console_params {
        const char *machine; /* the name in journal lines and in <out_dir>/<machine>-console.log */
        const char *out_dir;
        /* A restarted worker appends to the log file, and its ring and line
         * numbers continue from it; a first start truncates the file. */
        bool restarted;
};

int machine_console_new(struct event_base *base, const struct machine_console_params *p,
                        const struct machine_console_ops *ops, void *userdata, struct machine_console **ret);
/* Frees pending reads without answering them (the worker is exiting). */
struct machine_console *machine_console_free(struct machine_console *c);

/* ---- from the backends ---- */
/* Bytes from the guest's serial console; its end (flushes an unfinished last line). */
void machine_console_feed(struct machine_console *c, const uint8_t *buf, size_t len);
void machine_console_eof(struct machine_console *c);
/* One line the hypervisor wrote to its stderr: logged and kept for errors. */
void machine_console_stderr_line(struct machine_console *c, const char *line);
/* A new hypervisor process: forget the stderr lines of the one before. */
void machine_console_stderr_forget(struct machine_console *c);
/* The last console and stderr lines as one string, for error messages. */
void machine_console_describe_tail(struct machine_console *c, char *buf, size_t size);

/* ---- from the request layer ---- */
/* Read lines from @from_line on, answering @seq through the ops: now if there
 * are any, if @timeout_ms is 0, or if @ended (nothing more can come);
 * otherwise once a line arrives, after @timeout_ms (< 0: no limit), or at
 * machine_console_answer_all(). Returns < 0 (and answers nothing) only when
 * the read could not be queued. */
int machine_console_read(struct machine_console *c, uint32_t seq, uint64_t from_line, int64_t timeout_ms, bool ended);
/* The machine stopped: answer every waiting read with what there is. */
void machine_console_answer_all(struct machine_console *c);
