/* SPDX-License-Identifier: MIT */
/*
 * qemu-bootcache.c owns the boot cache of one QEMU machine (docs/machine.md,
 * "Boot snapshots"): which snapshot fits a boot (qemu-snapshot.c's key),
 * saving one once the guest shell first comes up (9p shares unmounted, the
 * shell queue held, QMP migrate to a file, cont, shares mounted again),
 * loading one into a QEMU started with -incoming defer, what the guest
 * needs after a restore (resync, clock, shares), and finishing a save whose
 * worker died (the QEMU_SNAPSHOT_SAVING file in the state dir says which: the
 * re-attached worker keeps the file only if QEMU completed the migration,
 * lets the VM run and mounts the shares again). The backend calls it at its
 * start steps and re-attach and hands it the answers to its QMP requests.
 */
#include <json-c/json.h>
#include <sys/stat.h>
#include <time.h>

#include "fs-util.h"
#include "log.h"
#include "qemu-bootcache.h"
#include "qemu-snapshot.h"

enum bootcache_kind {
        BOOTCACHE_LOAD = QEMU_BOOTCACHE_KIND_BASE, /* a restore: migrate-incoming */
        BOOTCACHE_INCOMING,                        /* a restore: query-migrate until loaded */
        BOOTCACHE_MIGRATE,                         /* a save: migrate to the cache file */
        BOOTCACHE_POLL,                            /* a save: query-migrate until done */
        BOOTCACHE_CONT,                            /* a save: let the original VM run on */
        BOOTCACHE_RECOVER_POLL,                    /* after re-attach mid-save: query-migrate until done */
        BOOTCACHE_RECOVER_STATUS,                  /* then query-status: cont unless running */
        _BOOTCACHE_KIND_END,
};

struct qemu_bootcache {
        struct machine *m;
        struct qemu_control *ctl;
        const struct qemu_bootcache_ops *ops;
        void *userdata;
        char key[QEMU_SNAPSHOT_KEY_LEN + 1];
        char *dir;       /* <boot_cache>/<key> */
        bool restoring;  /* this boot loads the snapshot */
        bool due;        /* this boot saves one once the guest shell is up */
        bool recovering; /* re-attached in the middle of a save: finish it */
        char *tmp;       /* the save's temporary file (renamed to <dir>/vmstate once complete) */
        char *path;      /* <dir>/vmstate */
        struct event *timer;
        unsigned long long started;
};

static void bootcache_answered(struct qemu_bootcache *q, int kind, const char *reply);
static void bootcache_resume_guest(struct qemu_bootcache *q);
static void bootcache_abort(struct qemu_bootcache *q, const char *why);
static void bootcache_job_logged(struct shell_job *j, int error, const char *message, int status, uint8_t *output,
                                 size_t len);

static char *saving_path(const struct qemu_bootcache *q) {
        char *p;

        return asprintf(&p, "%s/" QEMU_SNAPSHOT_SAVING, q->m->cfg.state_dir) < 0 ? NULL : p;
}

/* Read the QEMU_SNAPSHOT_SAVING file into q->tmp and q->path: 1 if a save was
 * under way, 0 if not. */
static int saving_load(struct qemu_bootcache *q) {
        _cleanup_free_ char *marker = saving_path(q), *text = NULL;
        int r;

        if (!marker)
                return -ENOMEM;
        r = read_file_max(marker, 2 * 4096 + 2, &text);
        if (r == -ENOENT)
                return 0;
        free(q->tmp);
        free(q->path);
        q->tmp = q->path = NULL;
        if (r >= 0)
                r = qemu_snapshot_saving_parse(text, &q->tmp, &q->path);
        if (r < 0) {
                log_warning("Boot cache: ignoring the unreadable %s: %s", marker, strerror(-r));
                (void) unlink(marker);
                return 0;
        }
        return 1;
}

/* A new QEMU starts: a save of the previous one that nobody finished (its
 * QEMU died with its worker) leaves no snapshot, only its temporary file. */
static void bootcache_forget_save(struct qemu_bootcache *q) {
        _cleanup_free_ char *marker = NULL;

        if (saving_load(q) > 0) {
                log_info("Boot cache: removing %s, left by a save that did not finish", q->tmp);
                (void) unlink(q->tmp);
                if ((marker = saving_path(q)))
                        (void) unlink(marker);
        }
        free(q->tmp);
        free(q->path);
        q->tmp = q->path = NULL;
}

/* Which snapshot fits this boot: none (cache off), one to load (restoring:
 * QEMU waits for it with -incoming defer), or one to save once the guest
 * shell is up. */
int qemu_bootcache_plan(struct qemu_bootcache *q, struct qemu_cmd *cmd) {
        const struct machine_config *c = &q->m->cfg;
        _cleanup_free_ char *text = NULL, *path = NULL;
        int r;

        q->restoring = q->due = q->recovering = false;
        q->key[0] = 0;
        free(q->dir);
        q->dir = NULL;
        bootcache_forget_save(q);
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
        int kind = q->restoring ? BOOTCACHE_INCOMING : q->recovering ? BOOTCACHE_RECOVER_POLL : BOOTCACHE_POLL;

        if (qemu_control_submit(q->ctl, QEMU_QMP, kind, q->restoring, "{\"execute\": \"query-migrate\"}", 0) < 0)
                bootcache_abort(q, "out of memory");
}

/* "status" of a query-migrate or query-status answer. */
static void migrate_status(const char *reply, char *buf, size_t size) {
        json_object *o = reply ? json_tokener_parse(reply) : NULL, *ret, *st;

        buf[0] = 0;
        if (o && json_object_object_get_ex(o, "return", &ret) && json_object_object_get_ex(ret, "status", &st))
                (void) snprintf(buf, size, "%s", json_object_get_string(st));
        json_object_put(o);
}

/* After re-attach mid-save, QEMU no longer migrating: keep the file only if
 * the migration completed, then let the VM run. */
static void bootcache_recover_migrated(struct qemu_bootcache *q, const char *status) {
        if (qemu_snapshot_migration_of(status) == QEMU_SNAPSHOT_MIGRATION_COMPLETED) {
                if (access(q->tmp, F_OK) < 0)
                        log_info("Boot cache: the interrupted save had completed (%s)", q->path);
                else if (rename(q->tmp, q->path) < 0) {
                        log_warning("Boot cache: could not rename %s to %s: %m; removing it", q->tmp, q->path);
                        (void) unlink(q->tmp);
                } else
                        log_info("Boot cache: saved %s (the migration completed while the worker restarted)", q->path);
        } else {
                log_warning("Boot cache: the interrupted save did not complete (migration %s); removing %s",
                            status[0] ? status : "never started", q->tmp);
                (void) unlink(q->tmp);
        }
        if (qemu_control_submit(q->ctl, QEMU_QMP, BOOTCACHE_RECOVER_STATUS, false, "{\"execute\": \"query-status\"}",
                                0) < 0)
                bootcache_abort(q, "out of memory");
}

static void bootcache_answered(struct qemu_bootcache *q, int kind, const char *reply) {
        char status[32];

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
                switch (qemu_snapshot_migration_of(status)) {
                case QEMU_SNAPSHOT_MIGRATION_NONE:
                        bootcache_abort(q, reply ?: "no answer");
                        return;
                case QEMU_SNAPSHOT_MIGRATION_RUNNING:
                        machine_timer_set(q->timer, 20 * USEC_PER_MSEC);
                        return;
                case QEMU_SNAPSHOT_MIGRATION_COMPLETED:
                        break;
                }
                if (rename(q->tmp, q->path) < 0) {
                        bootcache_abort(q, "could not rename the saved state");
                        return;
                }
                log_info("Boot cache: saved %s in %.2f s", q->path, (double) (now_usec() - q->started) / USEC_PER_SEC);
                if (qemu_control_submit(q->ctl, QEMU_QMP, BOOTCACHE_CONT, false, "{\"execute\": \"cont\"}", 0) < 0)
                        bootcache_abort(q, "out of memory");
                return;
        case BOOTCACHE_CONT:
                bootcache_resume_guest(q);
                return;
        case BOOTCACHE_RECOVER_POLL:
                migrate_status(reply, status, sizeof status);
                if (qemu_snapshot_migration_of(status) == QEMU_SNAPSHOT_MIGRATION_RUNNING)
                        machine_timer_set(q->timer, 20 * USEC_PER_MSEC);
                else
                        bootcache_recover_migrated(q, status);
                return;
        case BOOTCACHE_RECOVER_STATUS:
                /* Paused by the migration (postmigrate, or finish-migrate's end): run it. */
                migrate_status(reply, status, sizeof status);
                if (streq(status, "running")) {
                        bootcache_resume_guest(q);
                        return;
                }
                log_info("Boot cache: the VM is %s after the interrupted save; continuing it",
                         status[0] ? status : "?");
                if (qemu_control_submit(q->ctl, QEMU_QMP, BOOTCACHE_CONT, false, "{\"execute\": \"cont\"}", 0) < 0)
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

/* The shares are back: the save is over, whatever became of it. */
static void bootcache_remounted(struct shell_job *j, int error, const char *message, int status, uint8_t *output,
                                size_t len) {
        struct qemu_bootcache *q = j->userdata;
        _cleanup_free_ char *marker = saving_path(q);

        bootcache_job_logged(j, error, message, status, output, len);
        if (marker)
                (void) unlink(marker);
        q->recovering = false;
}

/* The original VM runs on after the save: mount its shares again, let the
 * queue go. After a re-attach the VM may have stood paused for a while: set
 * its clock too. */
static void bootcache_resume_guest(struct qemu_bootcache *q) {
        struct shell_job *j = shell_job_new(SHELL_JOB_EXEC, QEMU_SNAPSHOT_REMOUNT_COMMAND);

        if (j) {
                j->timeout_s = 30;
                if (q->recovering)
                        j->begin = bootcache_clock_begin;
                j->done = bootcache_remounted;
                j->userdata = q;
                machine_shell_submit_first(q->m->shell, j);
        }
        machine_shell_hold(q->m->shell, false);
}

static void bootcache_abort(struct qemu_bootcache *q, const char *why) {
        log_warning("Boot cache: not saving a snapshot: %.300s", why);
        if (q->tmp)
                (void) unlink(q->tmp);
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
        (void) snprintf(uri, sizeof uri, "exec:cat > '%s'", q->tmp);
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
        log_info("Boot cache: saving a snapshot of the VM to %s", q->tmp);
        if (!json || qemu_control_submit(q->ctl, QEMU_QMP, BOOTCACHE_MIGRATE, false, json, 0) < 0)
                bootcache_abort(q, "out of memory");
}

/* The guest shell is up for the first time in a boot that should be saved. */
void qemu_bootcache_guest_ready(struct qemu_bootcache *q) {
        struct machine *m = q->m;
        struct shell_job *j;

        _cleanup_free_ char *marker = saving_path(q), *text = NULL;
        _cleanup_fclose_ FILE *f = NULL;

        if (!q->due)
                return;
        q->due = false;
        /* A name of this QEMU's own: identical machines of one run save at once. */
        free(q->tmp);
        free(q->path);
        q->path = NULL;
        if (asprintf(&q->tmp, "%s/" QEMU_SNAPSHOT_STATE ".tmp.%lld", q->dir, (long long) machine_pid(m)) < 0 ||
            asprintf(&q->path, "%s/" QEMU_SNAPSHOT_STATE, q->dir) < 0) {
                q->tmp = NULL;
                return;
        }
        /* Written before anything changes in the guest, removed once its shares are back. */
        if (!marker || qemu_snapshot_saving_format(q->tmp, q->path, &text) < 0 || !(f = fopen(marker, "we")) ||
            fputs(text, f) < 0 || fflush(f) != 0) {
                log_warning("Boot cache: not saving a snapshot: could not write %s", marker ?: "the marker");
                if (marker)
                        (void) unlink(marker);
                return;
        }
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

void qemu_bootcache_attached(struct qemu_bootcache *q) {
        if (saving_load(q) <= 0)
                return;
        log_warning("Boot cache: the previous worker died while saving a snapshot to %s; finishing the save and "
                    "letting the VM run",
                    q->tmp);
        q->recovering = true;
        /* No command before the VM runs and its shares are back. */
        machine_shell_hold(q->m->shell, true);
        bootcache_poll_cb(-1, 0, q);
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
        free(q->tmp);
        free(q->path);
        free(q);
        return NULL;
}
