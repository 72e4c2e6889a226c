/* SPDX-License-Identifier: MIT */
/*
 * qemu-bootcache.c owns the boot cache of one QEMU machine (docs/machine.md,
 * "Boot snapshots"): which snapshot fits a boot (qemu-snapshot.c's key),
 * saving one once the guest shell first comes up (9p shares unmounted, the
 * shell queue held, QMP migrate to a file, cont, shares mounted again),
 * loading one into a QEMU started with -incoming defer, and what the guest
 * needs after a restore (resync, clock, shares). The backend calls it at its
 * start steps and hands it the answers to its QMP requests.
 */
#include <json-c/json.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "qemu-bootcache.h"
#include "qemu-snapshot.h"

enum bootcache_kind {
        BOOTCACHE_LOAD = QEMU_BOOTCACHE_KIND_BASE, /* a restore: migrate-incoming */
        BOOTCACHE_INCOMING,                        /* a restore: query-migrate until loaded */
        BOOTCACHE_MIGRATE,                         /* a save: migrate to the cache file */
        BOOTCACHE_POLL,                            /* a save: query-migrate until done */
        BOOTCACHE_CONT,                            /* a save: let the original VM run on */
        _BOOTCACHE_KIND_END,
};

struct qemu_bootcache {
        struct machine *m;
        struct qemu_control *ctl;
        const struct qemu_bootcache_ops *ops;
        void *userdata;
        char key[QEMU_SNAPSHOT_KEY_LEN + 1];
        char *dir;      /* <boot_cache>/<key> */
        bool restoring; /* this boot loads the snapshot */
        bool due;       /* this boot saves one once the guest shell is up */
        struct event *timer;
        unsigned long long started;
};

static void bootcache_answered(struct qemu_bootcache *q, int kind, const char *reply);
static void bootcache_resume_guest(struct qemu_bootcache *q);
static void bootcache_abort(struct qemu_bootcache *q, const char *why);
static void bootcache_job_logged(struct shell_job *j, int error, const char *message, int status, uint8_t *output,
                                 size_t len);

/* Which snapshot fits this boot: none (cache off), one to load (restoring:
 * QEMU waits for it with -incoming defer), or one to save once the guest
 * shell is up. */
int qemu_bootcache_plan(struct qemu_bootcache *q, struct qemu_cmd *cmd) {
        const struct machine_config *c = &q->m->cfg;
        _cleanup_free_ char *text = NULL, *path = NULL;
        int r;

        q->restoring = q->due = false;
        q->key[0] = 0;
        free(q->dir);
        q->dir = NULL;
        if (!c->boot_cache || !*c->boot_cache)
                return 0;
        r = qemu_snapshot_key(cmd->argv, cmd->env, c->state_dir, c->shared_dir, q->key, &text);
        if (r < 0)
                return r;
        if (asprintf(&q->dir, "%s/%s", c->boot_cache, q->key) < 0 ||
            asprintf(&path, "%s/" QEMU_SNAPSHOT_STATE, q->dir) < 0) {
                q->dir = NULL;
                return -ENOMEM;
        }
        if (access(path, R_OK) < 0) {
                log_info("Boot cache: no snapshot for this VM (key %s) in %s; booting cold, saving one once the "
                         "guest shell is up",
                         q->key, c->boot_cache);
                q->due = true;
                return 0;
        }
        if (c->start_script) {
                /* "$@" of the start script ends with the driver's arguments. */
                _cleanup_free_ char *line = NULL;
                if (asprintf(&line, "%s -incoming defer", cmd->argv[2]) < 0)
                        return -ENOMEM;
                free(cmd->argv[2]);
                cmd->argv[2] = TAKE_PTR(line);
        } else {
                size_t n = strv_length(cmd->argv);
                char **v = realloc(cmd->argv, (n + 3) * sizeof *v);
                if (!v)
                        return -ENOMEM;
                cmd->argv = v;
                v[n] = strdup("-incoming");
                v[n + 1] = strdup("defer");
                v[n + 2] = NULL;
                if (!v[n] || !v[n + 1])
                        return -ENOMEM;
        }
        q->restoring = true;
        q->started = now_usec();
        log_info("Boot cache: restoring the snapshot %s instead of booting", path);
        return 0;
}

/* The snapshot would not load: move it aside (a later run saves a fresh one). */
void qemu_bootcache_discard(struct qemu_bootcache *q, const char *why) {
        char path[4096], bad[4200];

        log_warning("Boot cache: restoring %s/" QEMU_SNAPSHOT_STATE " failed (QEMU %s); booting cold instead", q->dir,
                    why);
        (void) snprintf(path, sizeof path, "%s/" QEMU_SNAPSHOT_STATE, q->dir);
        (void) snprintf(bad, sizeof bad, "%s.bad", path);
        (void) rename(path, bad);
        q->restoring = false;
}

int qemu_bootcache_load(struct qemu_bootcache *q) {
        _cleanup_free_ char *json = NULL;
        json_object *o = json_object_new_object(), *a = json_object_new_object();
        char uri[4200];

        if (!o || !a) {
                json_object_put(o);
                json_object_put(a);
                return -ENOMEM;
        }
        (void) snprintf(uri, sizeof uri, "exec:cat '%s/" QEMU_SNAPSHOT_STATE "'", q->dir);
        json_object_object_add(a, "uri", json_object_new_string(uri));
        json_object_object_add(o, "execute", json_object_new_string("migrate-incoming"));
        json_object_object_add(o, "arguments", a);
        json = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        if (!json || qemu_control_submit(q->ctl, QEMU_QMP, BOOTCACHE_LOAD, true, json, 0) < 0 ||
            qemu_control_submit(q->ctl, QEMU_QMP, BOOTCACHE_INCOMING, true, "{\"execute\": \"query-migrate\"}", 0) < 0)
                return -ENOMEM;
        return 0;
}

/* The restored guest runs: its shell lives on from the snapshot (resync
 * first), its clock is the snapshot's (set it), its 9p shares were unmounted
 * for the save (mount them again). */
/* The guest's clock is the snapshot's: set it to the host's, taken as the
 * command leaves; then mount the 9p shares again. */
static void bootcache_clock_begin(struct shell_job *j) {
        struct timespec ts;
        char *clock;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        if (qemu_snapshot_clock_command(
                    (unsigned long long) ts.tv_sec * USEC_PER_SEC + (unsigned long long) ts.tv_nsec / 1000, &clock) <
            0)
                return;
        free(j->command);
        j->command = clock;
}

void qemu_bootcache_restored(struct qemu_bootcache *q) {
        struct machine *m = q->m;
        struct shell_job *j;

        log_info("Boot cache: restored in %.2f s (key %s)", (double) (now_usec() - q->started) / USEC_PER_SEC, q->key);
        (void) worker_send_event(m->w, "boot-restored", "restored the boot snapshot %s", q->key);
        machine_shell_restored(m->shell);
        /* One round trip: the clock, then the shares. */
        if ((j = shell_job_new(SHELL_JOB_EXEC, "true"))) {
                j->timeout_s = 30;
                j->begin = bootcache_clock_begin;
                j->done = bootcache_job_logged;
                machine_shell_submit_first(m->shell, j);
        }
}

static void bootcache_poll_cb(evutil_socket_t fd, short what, void *arg) {
        struct qemu_bootcache *q = arg;

        if (qemu_control_submit(q->ctl, QEMU_QMP, q->restoring ? BOOTCACHE_INCOMING : BOOTCACHE_POLL, q->restoring,
                                "{\"execute\": \"query-migrate\"}", 0) < 0)
                bootcache_abort(q, "out of memory");
}

/* "status" of a query-migrate answer. */
static void migrate_status(const char *reply, char *buf, size_t size) {
        json_object *o = reply ? json_tokener_parse(reply) : NULL, *ret, *st;

        buf[0] = 0;
        if (o && json_object_object_get_ex(o, "return", &ret) && json_object_object_get_ex(ret, "status", &st))
                (void) snprintf(buf, size, "%s", json_object_get_string(st));
        json_object_put(o);
}

static void bootcache_answered(struct qemu_bootcache *q, int kind, const char *reply) {
        char status[32], path[4200], tmp[4300];

        switch ((enum bootcache_kind) kind) {
        case BOOTCACHE_INCOMING:
                /* QEMU exits if the snapshot does not load; until loaded, ask again. */
                migrate_status(reply, status, sizeof status);
                if (!streq(status, "completed"))
                        machine_timer_set(q->timer, 10 * USEC_PER_MSEC);
                else
                        q->ops->loaded(q->userdata);
                return;
        case BOOTCACHE_MIGRATE:
                if (reply && strstr(reply, "\"error\"")) {
                        bootcache_abort(q, reply);
                        return;
                }
                machine_timer_set(q->timer, 20 * USEC_PER_MSEC);
                return;
        case BOOTCACHE_POLL:
                migrate_status(reply, status, sizeof status);
                if (streq(status, "failed") || streq(status, "cancelled") || !status[0]) {
                        bootcache_abort(q, reply ?: "no answer");
                        return;
                }
                if (!streq(status, "completed")) {
                        machine_timer_set(q->timer, 20 * USEC_PER_MSEC);
                        return;
                }
                (void) snprintf(path, sizeof path, "%s/" QEMU_SNAPSHOT_STATE, q->dir);
                (void) snprintf(tmp, sizeof tmp, "%s.tmp", path);
                if (rename(tmp, path) < 0) {
                        bootcache_abort(q, "could not rename the saved state");
                        return;
                }
                log_info("Boot cache: saved %s in %.2f s", path, (double) (now_usec() - q->started) / USEC_PER_SEC);
                if (qemu_control_submit(q->ctl, QEMU_QMP, BOOTCACHE_CONT, false, "{\"execute\": \"cont\"}", 0) < 0)
                        bootcache_abort(q, "out of memory");
                return;
        case BOOTCACHE_CONT:
                bootcache_resume_guest(q);
                return;
        case BOOTCACHE_LOAD:
        case _BOOTCACHE_KIND_END:
                return;
        }
}

static void bootcache_job_logged(struct shell_job *j, int error, const char *message, int status, uint8_t *output,
                                 size_t len) {
        free(output);
        if (error < 0 || status != 0)
                log_warning("Boot cache: `%.60s...` failed in the guest (%s, status %d)", j->command, message ?: "ran",
                            status);
}

/* The original VM runs on after the save: mount its shares again, let the
 * queue go. */
static void bootcache_resume_guest(struct qemu_bootcache *q) {
        struct shell_job *j = shell_job_new(SHELL_JOB_EXEC, QEMU_SNAPSHOT_REMOUNT_COMMAND);

        if (j) {
                j->timeout_s = 30;
                j->done = bootcache_job_logged;
                machine_shell_submit_first(q->m->shell, j);
        }
        machine_shell_hold(q->m->shell, false);
}

static void bootcache_abort(struct qemu_bootcache *q, const char *why) {
        char tmp[4200];

        log_warning("Boot cache: not saving a snapshot: %.300s", why);
        (void) snprintf(tmp, sizeof tmp, "%s/" QEMU_SNAPSHOT_STATE ".tmp", q->dir ?: "");
        (void) unlink(tmp);
        (void) evtimer_del(q->timer);
        /* The VM may be paused after a failed or finished migration; the
         * answer to cont lets the guest go on (bootcache_resume_guest()). */
        if (qemu_control_submit(q->ctl, QEMU_QMP, BOOTCACHE_CONT, false, "{\"execute\": \"cont\"}", 0) < 0)
                bootcache_resume_guest(q);
}

/* The shares are unmounted: save the VM (QEMU pauses it, writes RAM and
 * device state to the file, and leaves it paused until cont). */
static void bootcache_prepared(struct shell_job *j, int error, const char *message, int status, uint8_t *output,
                               size_t len) {
        struct qemu_bootcache *q = j->userdata;
        _cleanup_free_ char *json = NULL;
        json_object *o, *a;
        char uri[4300];

        free(output);
        if (error < 0 || status != 0) {
                log_warning("Boot cache: not saving a snapshot: unmounting the guest's 9p shares failed (%s)",
                            message ?: "see the console");
                bootcache_resume_guest(q);
                return;
        }
        machine_shell_hold(q->m->shell, true);
        if (mkdir(q->m->cfg.boot_cache, 0755) < 0 && errno != EEXIST) {
                bootcache_abort(q, "could not create the boot cache directory");
                return;
        }
        if (mkdir(q->dir, 0755) < 0 && errno != EEXIST) {
                bootcache_abort(q, "could not create the snapshot directory");
                return;
        }
        (void) snprintf(uri, sizeof uri, "exec:cat > '%s/" QEMU_SNAPSHOT_STATE ".tmp'", q->dir);
        o = json_object_new_object();
        a = json_object_new_object();
        if (o && a) {
                json_object_object_add(a, "uri", json_object_new_string(uri));
                json_object_object_add(o, "execute", json_object_new_string("migrate"));
                json_object_object_add(o, "arguments", TAKE_PTR(a));
                json = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        }
        json_object_put(o);
        json_object_put(a);
        q->started = now_usec();
        if (!json || qemu_control_submit(q->ctl, QEMU_QMP, BOOTCACHE_MIGRATE, false, json, 0) < 0)
                bootcache_abort(q, "out of memory");
}

/* The guest shell is up for the first time in a boot that should be saved. */
void qemu_bootcache_guest_ready(struct qemu_bootcache *q) {
        struct machine *m = q->m;
        struct shell_job *j;

        if (!q->due)
                return;
        q->due = false;
        j = shell_job_new(SHELL_JOB_EXEC, QEMU_SNAPSHOT_PREPARE_COMMAND);
        if (!j)
                return;
        j->timeout_s = 30;
        j->done = bootcache_prepared;
        j->userdata = q;
        machine_shell_submit_first(m->shell, j);
}

bool qemu_bootcache_restoring(const struct qemu_bootcache *q) {
        return q && q->restoring;
}

bool qemu_bootcache_answered(struct qemu_bootcache *q, const struct qemu_request *r, const char *reply) {
        if (!q || r->kind < QEMU_BOOTCACHE_KIND_BASE || r->kind >= _BOOTCACHE_KIND_END)
                return false;
        bootcache_answered(q, r->kind, reply);
        return true;
}

bool qemu_bootcache_failed(struct qemu_bootcache *q, const struct qemu_request *r, const char *why) {
        if (!q || r->kind < QEMU_BOOTCACHE_KIND_BASE || r->kind >= _BOOTCACHE_KIND_END)
                return false;
        if (r->kind == BOOTCACHE_CONT) {
                log_warning("Boot cache: QEMU did not continue the VM after the save: %s", why);
                bootcache_resume_guest(q);
        } else
                bootcache_abort(q, why);
        return true;
}

void qemu_bootcache_reset(struct qemu_bootcache *q) {
        if (!q)
                return;
        (void) evtimer_del(q->timer);
        machine_shell_hold(q->m->shell, false);
}

int qemu_bootcache_new(struct machine *m, struct qemu_control *ctl, const struct qemu_bootcache_ops *ops,
                       void *userdata, struct qemu_bootcache **ret) {
        struct qemu_bootcache *q = calloc(1, sizeof *q);

        if (!q)
                return -ENOMEM;
        q->m = m;
        q->ctl = ctl;
        q->ops = ops;
        q->userdata = userdata;
        q->timer = evtimer_new(m->base, bootcache_poll_cb, q);
        if (!q->timer) {
                free(q);
                return -ENOMEM;
        }
        *ret = q;
        return 0;
}

struct qemu_bootcache *qemu_bootcache_free(struct qemu_bootcache *q) {
        if (!q)
                return NULL;
        machine_event_free(&q->timer);
        free(q->dir);
        free(q);
        return NULL;
}
