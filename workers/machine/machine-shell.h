/* SPDX-License-Identifier: MIT */
/*
 * machine-shell.h: the guest shell channel of one machine as an opaque
 * object. It owns the backdoor stream (guest-proto framing, the FIFO of
 * jobs, deadlines, the nonce resync) and reports upward only through
 * struct machine_shell_ops; it never calls the request layer. The backend
 * hands it the stream's fds (machine_shell_attach) and tells it when the
 * transport under it changed.
 */
#pragma once

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

/* A unit of work on the guest shell, run one at a time in FIFO order. */
enum shell_job_kind {
        SHELL_JOB_CONNECT,
        SHELL_JOB_EXEC,
        _SHELL_JOB_KIND_MAX,
};

struct shell_job;
/* A job ended: @error < 0 with @message, or @status (-1: not asked, -2: not
 * read) and @output (the callee owns it). The job is freed after this. */
typedef void (*shell_job_done_fn)(struct shell_job *j, int error, const char *message, int status, uint8_t *output,
                                  size_t len);

struct shell_job {
        enum shell_job_kind kind;
        char *command;
        int64_t timeout_s;          /* guest-side `timeout`; < 0: none */
        int64_t connect_timeout_ms; /* CONNECT: < 0: the shell's connect_s */
        bool check_return;
        bool check_output;
        bool idempotent;            /* may run again after its shell was lost (M_READ, wait_until attempts) */
        unsigned long long started; /* when it became the active job */
        shell_job_done_fn done;
        /* Optional: called as the command is about to be sent (it may
         * replace j->command, e.g. with the time of that moment). */
        void (*begin)(struct shell_job *j);
        void *userdata; /* for @done */
        uint32_t seq;   /* for @done: the request it answers, if any */
        TAILQ_ENTRY(shell_job) link;
};

struct shell_job *shell_job_new(enum shell_job_kind kind, const char *command);
struct shell_job *shell_job_free(struct shell_job *j);

/* What the shell tells its owner. All are mandatory. */
struct machine_shell_ops {
        /* A job is queued but no machine runs: start it and return false, or
         * return true if it runs (the job then goes ahead). */
        bool (*ensure_started)(void *userdata);
        /* Replies are waiting for the owner's channel: do not read the guest
         * now (machine_shell_resume() comes back). */
        bool (*busy)(void *userdata);
        /* machine_shell_connected() changed; persist it. */
        void (*state_changed)(void *userdata);
        /* The guest's root shell announced itself (after state_changed). */
        void (*guest_ready)(void *userdata);
        /* A resync begun by machine_shell_resync() ended, either way. */
        void (*resynced)(void *userdata);
        /* The last console/stderr lines, for a "did not boot" error. */
        void (*describe_tail)(void *userdata, char *buf, size_t size);
};

struct machine_shell_params {
        const char *machine; /* names the machine in errors */
        uint64_t connect_s;  /* the boot deadline for the ready line; 0: none */
        uint64_t output_max; /* a command's output cap (guest-proto) */
        bool fast_path;      /* the fast framing for checked commands */
};

struct machine_shell;

int machine_shell_new(struct event_base *base, const struct machine_shell_params *params,
                      const struct machine_shell_ops *ops, void *userdata, struct machine_shell **ret);
struct machine_shell *machine_shell_free(struct machine_shell *s);
static inline void machine_shell_freep(struct machine_shell **s) {
        *s = machine_shell_free(*s);
}

/* Adopt the guest shell fds (taken on success only): @rfd carries
 * the guest's bytes, @wfd (or @rfd when < 0) takes ours. With @watch, @rfd is
 * a regular file at that path that another process appends to: inotify says
 * when, and its end is not the end of the stream. */
int machine_shell_attach(struct machine_shell *s, int rfd, int wfd, const char *watch);
void machine_shell_detach(struct machine_shell *s);
/* The writer of a file-backed shell is gone: feed the rest of the file. */
void machine_shell_drain(struct machine_shell *s);
/* Read again after ops->busy() stopped it. */
void machine_shell_resume(struct machine_shell *s);

/* Queue a job; it runs when the ones before it are done. */
void machine_shell_submit(struct machine_shell *s, struct shell_job *j);
/* Queue a job ahead of all others (it runs when the active one is done; from
 * the event loop, so it may be called from any callback of the shell's). */
void machine_shell_submit_first(struct machine_shell *s, struct shell_job *j);
/* Start no further job until released (the running one finishes). */
void machine_shell_hold(struct machine_shell *s, bool hold);
/* The machine was restored from a snapshot taken with a connected shell:
 * connected, and the next job resyncs first. */
void machine_shell_restored(struct machine_shell *s);
/* Fail every queued and running job (machine gone, start failed). */
void machine_shell_fail_all(struct machine_shell *s, int error, const char *message);
/* Start/stop progress: look at the queue again (from the event loop). */
void machine_shell_kick(struct machine_shell *s);
/* The guest shell went away (guest reboot): watch for the next ready line. */
void machine_shell_disconnected(struct machine_shell *s);
/* The transport under the shell closed (a backdoor connection): a command in
 * flight fails with @why now; a connect or resync keeps waiting. */
void machine_shell_transport_lost(struct machine_shell *s, const char *why);
/* The same by the rules of a worker restart: an idempotent job in flight
 * runs again on the next shell, another fails with @why; queued jobs wait. */
void machine_shell_transport_reset(struct machine_shell *s, const char *why);
/* Raw bytes to the shell (poweroff), outside the protocol. */
int machine_shell_write_raw(struct machine_shell *s, const char *text);
/* After re-attach: resync with a nonce, then ops->resynced() (at once if
 * there is nothing to resync). */
void machine_shell_resync(struct machine_shell *s);

bool machine_shell_connected(const struct machine_shell *s);
void machine_shell_set_connected(struct machine_shell *s, bool connected);
/* Connected, nothing running or queued: a connect() can be answered at once. */
bool machine_shell_idle(const struct machine_shell *s);
