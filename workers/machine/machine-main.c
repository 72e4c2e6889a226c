/* SPDX-License-Identifier: MIT */
/*
 * machine-main.c owns vigil-machine's request layer: it decodes the config,
 * picks the backend, answers every MSG_M_* request (a table indexed by type),
 * keeps the machine's lifecycle flags and the waiters on them, runs the
 * wait-until retry loop (reference semantics: one attempt, then 1 s pauses,
 * then a final attempt) and keeps the state file. The console (log file,
 * journal lines, the ring wait_for_console_text reads) is machine-console.c's;
 * this layer creates it, answers its reads and tells it when the machine stops.
 */
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "exit-status.h"
#include "log.h"
#include "machine.h"
#include "peer.h"

#define STATE_FILE "vigil-machine.state"

struct wait_until {
        struct machine *m;
        uint32_t seq;
        char *command;
        int64_t timeout_s;
        bool want_success;
        bool last_try;
        unsigned long long start;
        struct event *timer;
        LIST_ENTRY(wait_until) link;
};

static void machine_send_ready(struct machine *m) {
        if (m->ready_sent)
                return;
        m->ready_sent = true;
        (void) worker_send_ready(m->w);
}

/* ---- waiters ---- */

static void seq_waiter_free(struct seq_waiter *s) {
        LIST_REMOVE(s, link);
        if (s->timer)
                event_free(s->timer);
        free(s);
}

static struct seq_waiter *seq_waiter_add(struct machine *m, void *head, uint32_t seq) {
        struct seq_waiter *s = calloc(1, sizeof *s);

        if (!s)
                return NULL;
        s->seq = seq;
        s->m = m;
        LIST_INSERT_HEAD((LIST_HEAD(, seq_waiter) *) head, s, link);
        return s;
}

static void reply_all(struct machine *m, void *head, int error, const char *message) {
        LIST_HEAD(, seq_waiter) *h = head;
        struct seq_waiter *s;

        while ((s = LIST_FIRST(h))) {
                if (error < 0)
                        (void) machine_reply_error(m, s->seq, error, "%s", message);
                else
                        (void) machine_reply_ok(m, s->seq);
                seq_waiter_free(s);
        }
}

/* ---- state file (what a restarted worker cannot learn from the fds) ---- */

static void machine_save_state(struct machine *m) {
        char path[512], tmp[520];
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -EBADF;

        (void) snprintf(path, sizeof path, "%s/" STATE_FILE, m->cfg.state_dir);
        (void) snprintf(tmp, sizeof tmp, "%s.tmp", path);
        if (asprintf(&text, "{\"booted\":%s,\"connected\":%s,\"pid\":%lld,\"allow_reboot\":%s}\n",
                     m->booted ? "true" : "false", machine_shell_connected(m->shell) ? "true" : "false",
                     (long long) machine_pid(m), m->allow_reboot ? "true" : "false") < 0) {
                text = NULL;
                return;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t) strlen(text) || rename(tmp, path) < 0)
                log_warning_errno(negative_errno(), "Failed to write %s", path);
}

static void load_state(struct machine *m, bool *ret_connected, bool *ret_allow_reboot) {
        char path[512];
        json_object *j, *v;

        *ret_connected = *ret_allow_reboot = false;
        (void) snprintf(path, sizeof path, "%s/" STATE_FILE, m->cfg.state_dir);
        j = json_object_from_file(path);
        if (!j)
                return;
        if (json_object_object_get_ex(j, "connected", &v))
                *ret_connected = json_object_get_boolean(v);
        if (json_object_object_get_ex(j, "allow_reboot", &v))
                *ret_allow_reboot = json_object_get_boolean(v);
        json_object_put(j);
}

/* ---- lifecycle ---- */

static void report_started(struct machine *m, int r, const char *message);

/* Start (or join the start in progress); completion via machine_started(). */
static int machine_start(struct machine *m, bool allow_reboot) {
        int r;

        if (m->starting || m->booted)
                return 0;
        m->starting = true;
        r = m->backend->start(m, allow_reboot);
        if (r < 0)
                report_started(m, r, "could not start the machine");
        return 0;
}

static void report_started(struct machine *m, int r, const char *message) {
        m->starting = false;
        if (r < 0) {
                (void) snprintf(m->last_error, sizeof m->last_error, "%s", message);
                log_event(LOG_ERR, LOG_EVENT_MACHINE_FAILED, NULL, "Starting the machine failed: %s", message);
                reply_all(m, &m->start_waiters, r, message);
                machine_shell_fail_all(m->shell, r, message);
                return;
        }
        m->booted = true;
        machine_shell_set_connected(m->shell, false);
        m->booted_at = now_usec();
        m->last_error[0] = 0;
        machine_save_state(m);
        reply_all(m, &m->start_waiters, 0, NULL);
        machine_shell_kick(m->shell);
}

static void report_stopped(struct machine *m, const char *why) {
        bool was = m->booted;

        m->booted = false;
        machine_shell_set_connected(m->shell, false);
        m->starting = false;
        machine_save_state(m);
        if (was)
                log_info("Machine stopped: %s", why);
        machine_shell_fail_all(m->shell, -ECONNRESET, why);
        reply_all(m, &m->shutdown_waiters, 0, NULL);
        machine_console_answer_all(m->console);
}

/* ---- requests ---- */

static void exec_done(struct shell_job *j, int error, const char *message, int status, uint8_t *output, size_t len) {
        struct machine *m = j->userdata;
        uint32_t seq = j->seq;
        unsigned long long ms = (now_usec() - j->started) / 1000;
        char st[40], took[48];

        snprintf(st, sizeof(st), "VIGIL_EXIT_STATUS=%d", status);
        snprintf(took, sizeof(took), "VIGIL_DURATION_MS=%llu", ms);
        /* The run's timeline (report.html) gets each command as a bar: "exit
         * STATUS after MS ms: COMMAND" or "failed after MS ms: COMMAND". */
        if (error < 0)
                (void) worker_send_event(m->w, "command", "failed after %llu ms: %s", ms, j->command);
        else
                (void) worker_send_event(m->w, "command", "exit %d after %llu ms: %s", status, ms, j->command);
        if (error < 0) {
                log_event(LOG_INFO, LOG_EVENT_COMMAND, NULL, "command failed: %s", message ?: "no reason given");
                (void) machine_reply_error(m, seq, error, "%s", message ?: "command failed");
        } else {
                /* The journal's story of a machine includes each command's outcome. */
                log_event(LOG_INFO, LOG_EVENT_COMMAND, ((const char *[]){st, took, NULL}),
                          "command exited with status %d after %llu ms", status, ms);
                (void) machine_reply_exec(m, seq, status, output, len);
        }
        free(output);
}

static int handle_execute(struct machine *m, const struct frame *f) {
        const struct msg_m_execute *b = f->body;
        struct shell_job *j = shell_job_new(SHELL_JOB_EXEC, b->command);

        if (!j)
                return machine_reply_error(m, f->seq, -ENOMEM, "out of memory");
        j->timeout_s = b->timeout_s;
        j->check_return = b->check_return;
        j->check_output = b->check_output;
        j->idempotent = f->type == MSG_M_READ; /* the supervisor's replay rule, for a lost transport too */
        j->done = exec_done;
        j->userdata = m;
        j->seq = f->seq;
        log_event(LOG_INFO, LOG_EVENT_COMMAND, NULL, "execute: %s", b->command);
        machine_shell_submit(m->shell, j);
        return 0;
}

static void connect_done(struct shell_job *j, int error, const char *message, int status, uint8_t *output,
                         size_t len) {
        struct machine *m = j->userdata;
        uint32_t seq = j->seq;

        free(output);
        if (error < 0)
                (void) machine_reply_error(m, seq, error, "%s", message ?: "connect failed");
        else
                (void) machine_reply_ok(m, seq);
}

static int handle_connect(struct machine *m, const struct frame *f) {
        const struct msg_m_timeout *b = f->body;
        struct shell_job *j;

        if (m->booted && machine_shell_idle(m->shell))
                return machine_reply_ok(m, f->seq);
        j = shell_job_new(SHELL_JOB_CONNECT, NULL);
        if (!j)
                return machine_reply_error(m, f->seq, -ENOMEM, "out of memory");
        j->connect_timeout_ms = b->timeout_ms;
        j->done = connect_done;
        j->userdata = m;
        j->seq = f->seq;
        machine_shell_submit(m->shell, j);
        return 0;
}

static void wait_until_free(struct wait_until *wu) {
        LIST_REMOVE(wu, link);
        if (wu->timer)
                event_free(wu->timer);
        free(wu->command);
        free(wu);
}

static void wait_until_attempt(struct wait_until *wu);

static void wait_until_done(struct shell_job *j, int error, const char *message, int status, uint8_t *output,
                            size_t len) {
        struct wait_until *wu = j->userdata;
        struct machine *m = wu->m;

        if (error < 0) {
                /* As in the reference, an execute failure propagates out of retry(). */
                (void) machine_reply_error(m, wu->seq, error, "%s", message ?: "command failed");
                goto done;
        }
        if (wu->want_success ? status == 0 : status != 0) {
                (void) machine_reply_exec(m, wu->seq, status, output, len);
                goto done;
        }
        if (wu->last_try) {
                (void) machine_reply_error(
                        m, wu->seq, -ETIMEDOUT, "action timed out after %.2f seconds (timeout=%lld)",
                        (double) (now_usec() - wu->start) / USEC_PER_SEC, (long long) wu->timeout_s);
                goto done;
        }
        free(output);
        machine_timer_set(wu->timer, USEC_PER_SEC);
        return;
done:
        free(output);
        wait_until_free(wu);
}

static bool wait_until_time_left(const struct wait_until *wu) {
        return wu->timeout_s < 0 || now_usec() - wu->start < (unsigned long long) wu->timeout_s * USEC_PER_SEC;
}

static void wait_until_attempt(struct wait_until *wu) {
        struct shell_job *j = shell_job_new(SHELL_JOB_EXEC, wu->command);

        if (!j) {
                (void) machine_reply_error(wu->m, wu->seq, -ENOMEM, "out of memory");
                wait_until_free(wu);
                return;
        }
        wu->last_try = !wait_until_time_left(wu);
        j->timeout_s = wu->timeout_s;
        j->idempotent = true;
        j->done = wait_until_done;
        j->userdata = wu;
        machine_shell_submit(wu->m->shell, j);
}

static void wait_until_timer(evutil_socket_t fd, short what, void *arg) {
        wait_until_attempt(arg);
}

static int handle_wait_until(struct machine *m, const struct frame *f) {
        const struct msg_m_wait_until *b = f->body;
        struct wait_until *wu = calloc(1, sizeof *wu);

        if (!wu || !(wu->command = strdup(b->command))) {
                free(wu);
                return machine_reply_error(m, f->seq, -ENOMEM, "out of memory");
        }
        wu->m = m;
        wu->seq = f->seq;
        wu->timeout_s = b->timeout_s;
        wu->want_success = b->want_success;
        wu->start = now_usec();
        LIST_INSERT_HEAD(&m->wait_untils, wu, link);
        wu->timer = evtimer_new(m->base, wait_until_timer, wu);
        if (!wu->timer) {
                wait_until_free(wu);
                return machine_reply_error(m, f->seq, -ENOMEM, "out of memory");
        }
        wait_until_attempt(wu);
        return 0;
}

static int handle_start(struct machine *m, const struct frame *f) {
        const struct msg_m_start *b = f->body;

        if (m->booted)
                return machine_reply_ok(m, f->seq);
        if (!seq_waiter_add(m, &m->start_waiters, f->seq))
                return machine_reply_error(m, f->seq, -ENOMEM, "out of memory");
        return machine_start(m, b->allow_reboot);
}

static void shutdown_timer(evutil_socket_t fd, short what, void *arg) {
        struct seq_waiter *s = arg;

        (void) machine_reply_error(s->m, s->seq, -ETIMEDOUT, "timed out waiting for the VM to power off");
        seq_waiter_free(s);
}

static int add_shutdown_waiter(struct machine *m, uint32_t seq, int64_t timeout_ms) {
        struct seq_waiter *s = seq_waiter_add(m, &m->shutdown_waiters, seq);

        if (!s)
                return machine_reply_error(m, seq, -ENOMEM, "out of memory");
        if (timeout_ms >= 0) {
                s->timer = evtimer_new(m->base, shutdown_timer, s);
                if (s->timer)
                        machine_timer_set(s->timer, (unsigned long long) timeout_ms * USEC_PER_MSEC);
        }
        return 0;
}

static int handle_shutdown(struct machine *m, const struct frame *f) {
        int r;

        if (!m->booted)
                return machine_reply_ok(m, f->seq);
        r = m->backend->shutdown(m);
        if (r < 0)
                return machine_reply_error(m, f->seq, r, "could not ask the guest to power off");
        return add_shutdown_waiter(m, f->seq, -1);
}

static int handle_crash(struct machine *m, const struct frame *f) {
        int r;

        if (!m->booted)
                return machine_reply_ok(m, f->seq);
        log_info("forced crash");
        r = m->backend->crash(m);
        if (r < 0)
                return machine_reply_error(m, f->seq, r, "could not stop the machine");
        return add_shutdown_waiter(m, f->seq, -1);
}

static int handle_reboot(struct machine *m, const struct frame *f) {
        if (!m->booted)
                return machine_reply_error(m, f->seq, -ENOTCONN, "machine %s is not running", m->cfg.name);
        return m->backend->reboot(m, f->seq);
}

static int handle_wait_shutdown(struct machine *m, const struct frame *f) {
        const struct msg_m_timeout *b = f->body;

        if (!m->booted)
                return machine_reply_ok(m, f->seq);
        return add_shutdown_waiter(m, f->seq, b->timeout_ms);
}

static int need_running(struct machine *m, uint32_t seq) {
        if (m->booted)
                return 0;
        (void) machine_reply_error(m, seq, -ENOTCONN, "machine %s is not running (start it first)", m->cfg.name);
        return -ENOTCONN;
}

static int handle_monitor(struct machine *m, const struct frame *f) {
        const struct msg_m_text *b = f->body;

        if (need_running(m, f->seq) < 0)
                return 0;
        if (!m->backend->monitor)
                return machine_reply_error(m, f->seq, -EOPNOTSUPP, "backend %s has no monitor", m->backend->name);
        return m->backend->monitor(m, b->text, f->seq);
}

static int handle_qmp(struct machine *m, const struct frame *f) {
        const struct msg_m_text *b = f->body;

        if (need_running(m, f->seq) < 0)
                return 0;
        if (!m->backend->qmp)
                return machine_reply_error(m, f->seq, -EOPNOTSUPP, "backend %s has no QMP", m->backend->name);
        return m->backend->qmp(m, b->text, f->seq);
}

static int handle_set_link(struct machine *m, const struct frame *f) {
        const struct msg_m_set_link *b = f->body;

        if (need_running(m, f->seq) < 0)
                return 0;
        if (!m->backend->set_link)
                return machine_reply_error(m, f->seq, -EOPNOTSUPP, "backend %s cannot switch links", m->backend->name);
        return m->backend->set_link(m, b->nic, b->up, f->seq);
}

static int handle_send_console(struct machine *m, const struct frame *f) {
        const struct msg_m_text *b = f->body;
        int r;

        if (need_running(m, f->seq) < 0)
                return 0;
        if (!m->backend->send_console)
                return machine_reply_error(m, f->seq, -EOPNOTSUPP, "backend %s has no console input",
                                           m->backend->name);
        r = m->backend->send_console(m, b->text, strlen(b->text));
        if (r < 0)
                return machine_reply_error(m, f->seq, r, "could not write to the console");
        return machine_reply_ok(m, f->seq);
}

static int handle_console_read(struct machine *m, const struct frame *f) {
        const struct msg_m_console_read *b = f->body;

        /* Nothing more can come without a machine (or one on its way). */
        if (machine_console_read(m->console, f->seq, b->from_line, b->timeout_ms, !m->booted && !m->starting) < 0)
                return machine_reply_error(m, f->seq, -ENOMEM, "out of memory");
        return 0;
}

static int handle_state(struct machine *m, const struct frame *f) {
        return worker_reply(m->w, MSG_M_STATE_RESULT, f->seq,
                            &(struct msg_m_state_result){.booted = m->booted,
                                                         .connected = machine_shell_connected(m->shell),
                                                         .pid = machine_pid(m),
                                                         .backend = (char *) m->backend->name,
                                                         .worker_pid = getpid()});
}

typedef int (*request_fn)(struct machine *m, const struct frame *f);

static const request_fn request_handlers[] = {
        [MSG_M_START] = handle_start,
        [MSG_M_CONNECT] = handle_connect,
        [MSG_M_EXECUTE] = handle_execute,
        [MSG_M_WAIT_UNTIL] = handle_wait_until,
        [MSG_M_SHUTDOWN] = handle_shutdown,
        [MSG_M_CRASH] = handle_crash,
        [MSG_M_REBOOT] = handle_reboot,
        [MSG_M_WAIT_SHUTDOWN] = handle_wait_shutdown,
        [MSG_M_MONITOR] = handle_monitor,
        [MSG_M_QMP] = handle_qmp,
        [MSG_M_CONSOLE_READ] = handle_console_read,
        [MSG_M_READ] = handle_execute,
        [MSG_M_SEND_CONSOLE] = handle_send_console,
        [MSG_M_STATE] = handle_state,
        [MSG_M_SET_LINK] = handle_set_link,
};

static int machine_on_frame(struct worker *w, const struct frame *f, int *fds, size_t n_fds, void *userdata) {
        struct machine *m = userdata;
        int r;

        if (f->type > 0 && (size_t) f->type < ELEMENTSOF(request_handlers) && request_handlers[f->type]) {
                const char *target = *(char *const *) f->body; /* field 0 of every MSG_M_* body */
                if (!streq_ptr(target, m->cfg.name))
                        return machine_reply_error(m, f->seq, -ENOENT, "this worker runs machine %s, not %s",
                                                   m->cfg.name, target);
                r = request_handlers[f->type](m, f);
                return r == -EBADMSG ? r : 0;
        }
        r = machine_proc_on_frame(f);
        if (r != -ENOENT)
                return 0;
        if (f->type == MSG_OK || f->type == MSG_ERROR || f->type == MSG_PONG) {
                log_debug("Ignoring a %s with seq %u that answers nothing of ours", f->info->name, f->seq);
                return 0;
        }
        log_error("Unexpected %s from the supervisor", f->info->name);
        return -EBADMSG;
}

/* ---- what the guest shell tells us ---- */

static bool shell_ensure_started(void *userdata) {
        struct machine *m = userdata;

        if (m->booted)
                return true;
        (void) machine_start(m, m->cfg.allow_reboot);
        return false;
}

static bool shell_busy(void *userdata) {
        return machine_reply_busy(userdata);
}

static void shell_state_changed(void *userdata) {
        machine_save_state(userdata);
}

static void shell_guest_ready(void *userdata) {
        struct machine *m = userdata;

        (void) worker_send_event(m->w, "guest-ready", "connected to the guest root shell");
        if (m->backend->guest_ready)
                m->backend->guest_ready(m);
}

static void shell_resynced(void *userdata) {
        machine_send_ready(userdata);
}

static void shell_describe_tail(void *userdata, char *buf, size_t size) {
        struct machine *m = userdata;

        machine_console_describe_tail(m->console, buf, size);
}

static const struct machine_shell_ops shell_ops = {
        .ensure_started = shell_ensure_started,
        .busy = shell_busy,
        .state_changed = shell_state_changed,
        .guest_ready = shell_guest_ready,
        .resynced = shell_resynced,
        .describe_tail = shell_describe_tail,
};

static const struct machine_report_ops report_ops = {
        .started = report_started,
        .stopped = report_stopped,
};

/* ---- what the console answers ---- */

static void console_answer(void *userdata, uint32_t seq, const char *text, size_t len, uint64_t next_line) {
        (void) machine_reply_text(userdata, seq, text, len, next_line);
}

static void console_answer_error(void *userdata, uint32_t seq, int error, const char *message) {
        (void) machine_reply_error(userdata, seq, error, "%s", message);
}

static const struct machine_console_ops console_ops = {
        .answer = console_answer,
        .answer_error = console_answer_error,
};

static const struct machine_backend *const backends[_MACHINE_BACKEND_KIND_MAX] = {
        [MACHINE_BACKEND_QEMU] = &backend_qemu,
        [MACHINE_BACKEND_NSPAWN] = &backend_nspawn,
        [MACHINE_BACKEND_SSH] = &backend_ssh,
};

static int machine_configure(struct worker *w, const struct msg_config *cfg, void *userdata) {
        struct machine *m = userdata;
        char error[MACHINE_CONFIG_ERROR_MAX];
        bool restarted = cfg->restarts > 0;
        int r;

        m->w = w;
        m->base = worker_event_base(w);
        LIST_INIT(&m->start_waiters);
        LIST_INIT(&m->shutdown_waiters);
        LIST_INIT(&m->wait_untils);

        r = machine_config_parse(cfg->json, &m->cfg, error, sizeof error);
        if (r < 0) {
                log_error("%s", error);
                return r;
        }
        if (!streq(m->cfg.name, worker_name(w)))
                log_warning("Config names machine %s but this worker is %s", m->cfg.name, worker_name(w));
        m->backend = backends[m->cfg.backend_kind];
        m->report = &report_ops;

        if ((r = machine_shell_new(m->base,
                                   &(struct machine_shell_params){.machine = m->cfg.name,
                                                                  .connect_s = m->cfg.connect_s,
                                                                  .output_max = m->cfg.output_max,
                                                                  .fast_path = m->cfg.fast_path},
                                   &shell_ops, m, &m->shell)) < 0)
                return r;
        (void) mkdir(m->cfg.state_dir, 0700);
        r = machine_console_new(m->base,
                                &(struct machine_console_params){
                                        .machine = m->cfg.name, .out_dir = m->cfg.out_dir, .restarted = restarted},
                                &console_ops, m, &m->console);
        if (r < 0)
                return r;
        r = m->backend->init(m);
        if (r < 0)
                return r;
        /* Its spawns say so (role=machine), a probe's or a shell's do not. */
        if (m->proc)
                machine_proc_set_machine(m->proc, true);

        if (!restarted) {
                log_info("Machine %s configured (backend %s, %s)", m->cfg.name, m->backend->name,
                         m->cfg.start_script ?: m->cfg.kernel ?: m->cfg.tree);
                machine_send_ready(m);
                if (m->backend->prepare)
                        m->backend->prepare(m);
                return 0;
        }
        bool connected, allow_reboot;
        load_state(m, &connected, &allow_reboot);
        r = m->backend->attach(m);
        if (r < 0)
                return r;
        if (r == 0) {
                log_info("Restarted (restart %llu); no running machine to re-attach to",
                         (unsigned long long) cfg->restarts);
                machine_send_ready(m);
                if (m->backend->prepare)
                        m->backend->prepare(m);
                return 0;
        }
        m->booted = true;
        machine_shell_set_connected(m->shell, connected);
        m->allow_reboot = allow_reboot;
        log_event(LOG_NOTICE, LOG_EVENT_RESTARTED, NULL,
                  "Re-attached to the running machine (pid %lld) after restart %llu; guest shell %s",
                  (long long) machine_pid(m), (unsigned long long) cfg->restarts,
                  connected ? "connected, resynchronising" : "not connected yet");
        machine_save_state(m);
        machine_shell_resync(m->shell);
        return 0;
}

static void machine_on_drained(struct worker *w, void *userdata) {
        struct machine *m = userdata;

        machine_reply_drained(m);
        if (!machine_reply_busy(m))
                machine_shell_resume(m->shell);
}

static void machine_on_exit(struct worker *w, void *userdata) {
        struct machine *m = userdata;
        struct wait_until *wu;

        if (m->backend && m->backend->free)
                m->backend->free(m);
        m->shell = machine_shell_free(m->shell);
        machine_reply_free_all();
        while ((wu = LIST_FIRST(&m->wait_untils)))
                wait_until_free(wu);
        while (LIST_FIRST(&m->start_waiters))
                seq_waiter_free(LIST_FIRST(&m->start_waiters));
        while (LIST_FIRST(&m->shutdown_waiters))
                seq_waiter_free(LIST_FIRST(&m->shutdown_waiters));
        m->console = machine_console_free(m->console);
        machine_config_done(&m->cfg);
}

int main(int argc, char **argv) {
        static struct machine m;
        static const struct worker_ops ops = {
                .kind = KIND_MACHINE,
                .configure = machine_configure,
                .on_frame = machine_on_frame,
                .on_drained = machine_on_drained,
                .on_exit = machine_on_exit,
        };

        return worker_main(argc, argv, &ops, &m);
}
