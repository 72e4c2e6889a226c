/* SPDX-License-Identifier: MIT */
/*
 * machine.h owns the state of the one machine a vigil-machine process runs
 * and the seam between the request layer (machine-main.c, machine-reply.c)
 * and the backends (backend-qemu.c, backend-nspawn.c). Arrows run one way:
 * the request layer owns the guest shell (machine-shell.h) and the console
 * (machine-console.h) and calls the backend through its vtable; a backend
 * uses the shell, the console, its processes (machine-proc.h) and the few
 * machine_* calls below to report upward.
 */
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "machine-config.h"
#include "machine-console.h"
#include "machine-proc.h"
#include "machine-shell.h"
#include "machine-util.h"
#include "msg.h"
#include "worker.h"

struct machine;

/*
 * The backend vtable: what a backend (QEMU, nspawn, SSH, ...) provides. It
 * starts and stops one machine, hands the guest shell's fds to m->shell
 * (machine_shell_attach) and console bytes to m->console
 * (machine_console_feed), and
 * reports its lifecycle with machine_started()/machine_stopped(). Processes
 * it needs are spawned by the supervisor through a struct machine_proc
 * (machine-proc.h), which also keeps the fds a restarted worker needs; the
 * one that is the machine goes in m->proc so its pid is reported.
 *
 * Mandatory: name, init, free, start, attach, shutdown, crash. The rest are
 * optional capabilities (NULL: the request fails with -EOPNOTSUPP). A
 * capability answers its request @seq through machine_reply_*().
 */
struct machine_backend {
        const char *name;
        /* Allocate m->backend_data; no process yet. */
        int (*init)(struct machine *m);
        void (*free)(struct machine *m);
        /* Begin starting; finish with machine_started() (also on failure). */
        int (*start)(struct machine *m, bool allow_reboot);
        /* Optional: no machine runs and none was asked for yet; get ready
         * for start() if that makes it faster (nothing may be seen of it). */
        void (*prepare)(struct machine *m);
        /* After a worker restart: re-adopt the stored fds and the running
         * process. Returns > 0 if a machine is up, 0 if none, < 0 on error. */
        int (*attach)(struct machine *m);
        /* Ask the guest to power off (does not wait; machine_stopped() follows). */
        int (*shutdown)(struct machine *m);
        /* Stop the machine now (does not wait; machine_stopped() follows). */
        int (*crash)(struct machine *m);
        /* Optional: the guest's root shell announced itself. */
        void (*guest_ready)(struct machine *m);

        /* Reset the guest; replies to @seq itself. */
        int (*reboot)(struct machine *m, uint32_t seq);
        int (*monitor)(struct machine *m, const char *command, uint32_t seq);
        int (*qmp)(struct machine *m, const char *json, uint32_t seq);
        int (*send_console)(struct machine *m, const char *text, size_t len);
        int (*set_link)(struct machine *m, const char *nic, bool up, uint32_t seq);
};

extern const struct machine_backend backend_qemu;
extern const struct machine_backend backend_nspawn;
extern const struct machine_backend backend_ssh;

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
        const struct machine_report_ops *report; /* how the backend reports up */

        bool booted;
        bool starting;
        bool allow_reboot; /* of the current boot */
        unsigned long long booted_at;
        char last_error[MSG_STR_MAX]; /* why the last start failed */

        struct machine_console *console; /* the console stream: log file, journal, line ring */
        struct machine_shell *shell;     /* the guest shell channel */
        struct machine_proc
                *proc; /* the backend's process that is the machine, if any (its spawns say role=machine) */

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

/* ---- backend -> request layer ----
 * What a backend reports upward. The request layer sets m->report; the
 * inline wrappers below are what backends call, so no backend calls into
 * machine-main.c. */
struct machine_report_ops {
        /* A start ended: r < 0 with @message saying what to do, or up. */
        void (*started)(struct machine *m, int r, const char *message);
        /* The machine is gone (@why). */
        void (*stopped)(struct machine *m, const char *why);
};

static inline void machine_started(struct machine *m, int r, const char *message) {
        m->report->started(m, r, message);
}
static inline void machine_stopped(struct machine *m, const char *why) {
        m->report->stopped(m, why);
}
/* The pid of the machine's process (0: none). */
static inline int64_t machine_pid(const struct machine *m) {
        return machine_proc_pid(m->proc);
}
