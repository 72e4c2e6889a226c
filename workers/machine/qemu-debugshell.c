/* SPDX-License-Identifier: MIT */
/*
 * qemu-debugshell.c owns starting a root shell on a VM's debug console, the
 * second virtconsole (hvc1) whose host side is the socket `vigil shell`
 * connects to, for guests that run none there (NixOS; vigil's tiny guest
 * runs its own, tools/guest/debug-shell). `vigil shell` creates
 * <state>/debug-shell.request (proto/defaults.h) when nothing answers; this
 * watches the state dir with inotify, removes the request and queues one
 * short command in the guest's backdoor shell: a login shell on hvc1 in a
 * session of its own (hvc1 its controlling terminal, so job control and
 * Ctrl-C work) that ends with the status marker vigil shell reads. The
 * test's shell runs that one command between its own; nothing else of it is
 * touched. test-vigil-shell covers it (a guest booted vigil.debugshell=none).
 */
#include <sys/inotify.h>

#include "log.h"
#include "machine-shell.h"
#include "machine-util.h"
#include "qemu-debugshell.h"

#define DEBUGSHELL_TIMEOUT_S 20

/* As tools/guest/debug-shell. util-linux's `setsid -f` forks the shell off
 * in a session of its own and returns at once, and `-c` makes hvc1 its
 * controlling terminal (job control, Ctrl-C). Not a shell's `&`: without job
 * control that starts it with SIGINT ignored, which no shell can undo, and
 * Ctrl-C would reach nothing. stdout is not kept (the command's output ends). */
static const char debugshell_command[] =
        "[ -c /dev/hvc1 ] || { echo 'no /dev/hvc1 in the guest' >&2; exit 3; }; "
        "setsid -f -c bash -c 'export USER=root HOME=/root TERM=linux; cd /root 2>/dev/null || cd /; stty sane; "
        "bash -il; printf \"\\r\\n\\033]vigil-shell-exit;%d\\007\" \"$?\"' <>/dev/hvc1 >&0 2>&0";

struct qemu_debugshell {
        struct machine *m;
        int notify;
        struct event *ev;
        char *request; /* <state>/debug-shell.request */
};

static void debugshell_done(struct shell_job *j, int error, const char *message, int status, uint8_t *output,
                            size_t len) {
        free(output);
        if (error < 0 || status != 0)
                log_warning("vigil shell: could not start a shell on the debug console (hvc1): %s (status %d)",
                            message ?: "the guest command failed", status);
        else
                log_info("vigil shell: started a root shell on the debug console (hvc1)");
}

/* Serve a request if there is one: remove it first, so one request is one shell. */
static void debugshell_serve(struct qemu_debugshell *d) {
        struct shell_job *j;

        if (unlink(d->request) < 0)
                return;
        j = shell_job_new(SHELL_JOB_EXEC, debugshell_command);
        if (!j) {
                log_warning("vigil shell: out of memory for the debug console's shell");
                return;
        }
        j->timeout_s = DEBUGSHELL_TIMEOUT_S;
        j->done = debugshell_done;
        machine_shell_submit(d->m->shell, j);
}

static void debugshell_cb(evutil_socket_t fd, short what, void *arg) {
        struct qemu_debugshell *d = arg;
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

        /* Drain; which file changed does not matter: the request is checked by name. */
        while (read(fd, buf, sizeof buf) > 0)
                ;
        debugshell_serve(d);
}

int qemu_debugshell_new(struct machine *m, struct qemu_debugshell **ret) {
        struct qemu_debugshell *d = calloc(1, sizeof *d);

        if (!d)
                return -ENOMEM;
        d->m = m;
        d->notify = -EBADF;
        if (asprintf(&d->request, "%s/" DEBUG_SHELL_REQUEST_NAME, m->cfg.state_dir) < 0) {
                d->request = NULL;
                qemu_debugshell_free(d);
                return -ENOMEM;
        }
        d->notify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (d->notify < 0 || inotify_add_watch(d->notify, m->cfg.state_dir, IN_CREATE | IN_MOVED_TO) < 0) {
                /* Not fatal: vigil shell then says nothing answers. */
                log_warning("vigil shell requests are not watched (inotify on %s: %m)", m->cfg.state_dir);
                d->notify = safe_close(d->notify);
        } else {
                int r = machine_event_watch(m->base, d->notify, EV_READ | EV_PERSIST, debugshell_cb, d, &d->ev);
                if (r < 0) {
                        qemu_debugshell_free(d);
                        return r;
                }
        }
        debugshell_serve(d); /* one made while no worker watched */
        *ret = d;
        return 0;
}

struct qemu_debugshell *qemu_debugshell_free(struct qemu_debugshell *d) {
        if (d) {
                machine_event_free(&d->ev);
                d->notify = safe_close(d->notify);
                free(d->request);
                free(d);
        }
        return NULL;
}
