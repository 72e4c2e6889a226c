/* SPDX-License-Identifier: MIT */
/*
 * machine.h owns the state of the one machine a vigil-machine process runs
 * and the seams between its parts: the request layer (machine-main.c), the
 * guest shell channel (machine-shell.c), the console stream, the helpers
 * every backend shares (machine-util.c), and the backend vtable that knows a
 * hypervisor or container manager (backend-qemu.c, backend-nspawn.c). A backend starts and stops
 * the machine and hands the generic code a shell fd and console bytes; it
 * knows nothing of requests' replies beyond the helpers here.
 */
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "console-log.h"
#include "guest-proto.h"
#include "machine-config.h"
#include "msg.h"
#include "worker.h"

struct machine;

/* The backend vtable. Mandatory: start, attach, shutdown, crash, reboot,
 * on_frame, free. The rest are optional capabilities (NULL: unsupported, the
 * request fails with -EOPNOTSUPP). Replies go through machine_reply_*(). */
struct machine_backend {
        const char *name;
        int (*init)(struct machine *m);
        void (*free)(struct machine *m);
        /* Begin starting; finish with machine_started(). */
        int (*start)(struct machine *m, bool allow_reboot);
        /* After a worker restart: re-adopt the stored fds and the running
         * process. Returns > 0 if a machine is up, 0 if none, < 0 on error. */
        int (*attach)(struct machine *m);
        /* Ask the guest to power off (does not wait). */
        int (*shutdown)(struct machine *m);
        /* Stop the machine now (does not wait). */
        int (*crash)(struct machine *m);
        /* Reset the guest; replies to @seq itself. */
        int (*reboot)(struct machine *m, uint32_t seq);
        /* Supervisor frames the backend asked for (SPAWNED, PROC_EXIT, ...).
         * Return 0 if handled, -ENOENT if not the backend's. */
        int (*on_frame)(struct machine *m, const struct frame *f, int *fds, size_t n_fds);

        int (*monitor)(struct machine *m, const char *command, uint32_t seq);
        int (*qmp)(struct machine *m, const char *json, uint32_t seq);
        int (*send_console)(struct machine *m, const char *text, size_t len);
        int (*set_link)(struct machine *m, const char *nic, bool up, uint32_t seq);
};

extern const struct machine_backend backend_qemu;
extern const struct machine_backend backend_nspawn;

/* A unit of work on the guest shell, run one at a time in FIFO order. */
enum shell_job_kind {
        SHELL_JOB_CONNECT,
        SHELL_JOB_EXEC,
        _SHELL_JOB_KIND_MAX,
};

struct shell_job;
typedef void (*shell_job_done_fn)(struct machine *m, struct shell_job *j, int error, const char *message, int status,
                                  uint8_t *output, size_t len);

struct shell_job {
        enum shell_job_kind kind;
        char *command;
        int64_t timeout_s;          /* guest-side `timeout`; < 0: none */
        int64_t connect_timeout_ms; /* CONNECT: < 0: the config's connect_s */
        bool check_return;
        bool check_output;
        unsigned long long started; /* when it became the active job */
        shell_job_done_fn done;     /* takes @output */
        void *userdata;
        TAILQ_ENTRY(shell_job) link;
};

struct console_waiter {
        uint32_t seq;
        uint64_t from;
        struct event *timer;
        struct machine *m;
        LIST_ENTRY(console_waiter) link;
};

struct seq_waiter {
        uint32_t seq;
        struct event *timer;
        struct machine *m;
        LIST_ENTRY(seq_waiter) link;
};

struct wait_until;

struct machine {
        struct worker *w;
        struct event_base *base;
        struct machine_config cfg;
        const struct machine_backend *backend;
        void *backend_data;

        bool booted;
        bool connected;
        bool starting;
        int64_t pid;
        int64_t stale_pid; /* a leftover stopped after a restart: its exit is ignored */
        bool allow_reboot; /* of the current boot */
        unsigned long long booted_at;
        char last_error[MSG_STR_MAX]; /* why the last start failed */

        /* console */
        struct console_splitter splitter;
        struct console_ring ring;
        struct console_ratelimit ratelimit;
        int console_log_fd;
        bool console_eof;
        char stderr_tail[4][256]; /* last QEMU stderr lines, for error messages */
        unsigned stderr_n;
        LIST_HEAD(, console_waiter) console_waiters;

        /* guest shell */
        int shell_fd;                     /* guest -> host: a socket, or the file QEMU appends to */
        int shell_wfd;                    /* host -> guest when not shell_fd (QEMU's input FIFO), else -EBADF */
        int shell_notify;                 /* inotify on the file, or -EBADF for a socket */
        bool shell_paused;                /* replies wait for the channel: not reading */
        unsigned long long shell_punched; /* file offset up to which blocks were freed */
        struct event *shell_more;
        struct event *shell_ev;
        struct event *shell_timer;
        struct event *shell_kick;
        struct event *shell_wev;
        struct evbuffer *shell_out;
        struct guest_proto gp;
        bool needs_resync; /* stream position unknown: resync with a nonce first */
        bool resyncing;
        bool shell_may_be_gone; /* after check_output=False: a fresh ready line ends a resync too */
        char nonce[40];
        struct shell_job *active;
        bool active_fast; /* the active job uses the fast framing */
        enum guest_phase active_phase;
        uint8_t *active_output;
        size_t active_output_len;
        unsigned long long phase_started;
        unsigned long long last_quiet_log;
        TAILQ_HEAD(, shell_job) jobs;

        /* requests waiting for a lifecycle change */
        LIST_HEAD(, seq_waiter) start_waiters;
        LIST_HEAD(, seq_waiter) shutdown_waiters;
        LIST_HEAD(, wait_until) wait_untils;
        bool ready_sent;
};

/* ---- machine-reply.c ---- */
int machine_reply_error(struct machine *m, uint32_t seq, int code, const char *fmt, ...) _printf_(4, 5);
int machine_reply_ok(struct machine *m, uint32_t seq);
int machine_reply_text(struct machine *m, uint32_t seq, const char *text, size_t len, uint64_t next_line);
int machine_reply_exec(struct machine *m, uint32_t seq, int64_t status, const uint8_t *data, size_t len);
/* Bulk replies wait for the channel: the guest shell should not be read now. */
bool machine_reply_busy(struct machine *m);
/* The channel drained: send more (the caller then resumes the shell). */
void machine_reply_drained(struct machine *m);
void machine_reply_free_all(void);

/* ---- machine-main.c ---- */

/* Start (or join the start in progress); completion via machine_started(). */
int machine_start(struct machine *m, bool allow_reboot);
/* Backend -> generic: lifecycle. */
void machine_started(struct machine *m, int r, const char *message);
void machine_stopped(struct machine *m, const char *why);
/* Console bytes from the guest's serial port; EOF. */
void machine_console_feed(struct machine *m, const uint8_t *buf, size_t len);
void machine_console_eof(struct machine *m);
void machine_stderr_line(struct machine *m, const char *line);
/* The last console/stderr lines as one string, for error messages. */
void machine_tail_describe(struct machine *m, char *buf, size_t size);
void machine_save_state(struct machine *m);
/* READY to the supervisor (once). */
void machine_send_ready(struct machine *m);

/* ---- machine-util.c ---- */
void machine_timer_set(struct event *e, unsigned long long usec);
/* Free *@e (may be NULL) and clear it. */
void machine_event_free(struct event **e);
/* Replace *@ret by a new event on @fd; an EV_PERSIST one is armed at once. */
int machine_event_watch(struct machine *m, int fd, short what, event_callback_fn cb, void *arg, struct event **ret);
/* SIGKILL the supervisor's child @proc (no reply; its PROC_EXIT follows). */
void machine_proc_kill(struct machine *m, const char *proc);
/* Whether @e is the exit of the backend's process @proc: the one running
 * now, or any of that name while none is known (m->pid <= 0). Logs the
 * exits it ignores. */
bool machine_proc_exit_is_current(struct machine *m, const struct msg_proc_exit *e, const char *proc);
/* "exit status N" or "killed by signal N (NAME)". */
void machine_exit_describe(const struct msg_proc_exit *e, char *buf, size_t size);
/* Stop @proc (pid @pid), a leftover whose fds a restart lost; its exit will
 * not be taken for the exit of the process started next. */
void machine_proc_kill_stale(struct machine *m, const char *proc, int64_t pid);
/* After a worker restart: the pid of the supervisor's child @proc, 0 if none. */
int64_t machine_restored_pid(struct machine *m, const char *proc);

/* ---- machine-shell.c ---- */
int machine_shell_init(struct machine *m);
void machine_shell_free(struct machine *m);
/* Adopt the guest shell fds (the backend keeps its own copies for the store):
 * @rfd carries the guest's bytes, @wfd (or @rfd when < 0) takes ours. With
 * @watch, @rfd is a regular file at that path that another process appends
 * to: inotify says when, and its end is not the end of the stream. */
int machine_shell_attach(struct machine *m, int rfd, int wfd, const char *watch);
/* Read again after machine_reply_busy() stopped it. */
void machine_shell_resume(struct machine *m);
/* The writer of a file-backed shell is gone: feed the rest of the file. */
void machine_shell_drain(struct machine *m);
void machine_shell_detach(struct machine *m);
/* Queue a job; it runs when the ones before it are done. */
void machine_shell_submit(struct machine *m, struct shell_job *j);
/* Fail every queued and running job (machine gone, start failed). */
void machine_shell_fail_all(struct machine *m, int error, const char *message);
/* Start/stop progress: look at the queue again. */
void machine_shell_kick(struct machine *m);
/* The guest shell went away (guest reboot): watch for the next ready line. */
void machine_shell_disconnected(struct machine *m);
/* Raw bytes to the shell (poweroff), outside the protocol. */
int machine_shell_write_raw(struct machine *m, const char *text);
/* After re-attach: resync with a nonce; calls machine_send_ready() when done. */
void machine_shell_resync_then_ready(struct machine *m);
struct shell_job *shell_job_new(enum shell_job_kind kind, const char *command);
void shell_job_free(struct shell_job *j);
