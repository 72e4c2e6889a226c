/* SPDX-License-Identifier: MIT */
/*
 * qemu-bootcache.c owns the boot cache of one QEMU machine (docs/machine.md,
 * "Boot snapshots"): which snapshot fits a boot (qemu-snapshot.c's key),
 * saving one once the guest shell first comes up (9p shares unmounted, the
 * shell queue held, QMP migrate to a file, for a direct-boot machine a
 * copy of its RAM, which QEMU keeps in a memfd, cont, shares mounted again),
 * loading one into a QEMU started with -incoming defer (mapping that RAM
 * copy-on-write), the disks a save carries (query-block says which; a disk
 * it cannot carry means no snapshot for the key; qemu-bootdisk.c copies
 * them), what the guest needs after a restore (shares, clock), and
 * finishing a save whose worker died (the QEMU_SNAPSHOT_SAVING file in the
 * state dir says which: the re-attached worker keeps the file only if QEMU
 * completed the migration, lets the VM run and mounts the shares again).
 * The backend calls it at its start steps and re-attach and hands it the
 * answers to its QMP requests.
 */
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <sys/stat.h>
#include <time.h>

#include "fd-util.h"
#include "fs-util.h"
#include "guest-proto.h"
#include "log.h"
#include "qemu-bootcache.h"
#include "qemu-bootdisk.h"
#include "qemu-bootram.h"
#include "qemu-snapshot.h"
#include "resume-agent-blob.h"
#include "resume-agent.h"

enum bootcache_kind {
        BOOTCACHE_LOAD = QEMU_BOOTCACHE_KIND_BASE, /* a restore: migrate-incoming */
        BOOTCACHE_INCOMING,                        /* a restore: query-migrate until loaded */
        BOOTCACHE_MIGRATE,                         /* a save: migrate to the cache file */
        BOOTCACHE_POLL,                            /* a save: query-migrate until done */
        BOOTCACHE_CONT,                            /* a save: let the original VM run on */
        BOOTCACHE_RECOVER_POLL,                    /* after re-attach mid-save: query-migrate until done */
        BOOTCACHE_RECOVER_STATUS,                  /* then query-status: cont unless running */
        BOOTCACHE_LOAD_CAPS,                       /* a restore of a RAM file: x-ignore-shared */
        BOOTCACHE_SAVE_CAPS,                       /* a save of a RAM file: x-ignore-shared, then migrate */
        BOOTCACHE_LOAD_FD,                         /* a restore: getfd, the snapshot's fd for migrate-incoming */
        BOOTCACHE_CAPS_OFF,                        /* after a save: x-ignore-shared off again */
        BOOTCACHE_STOP,                            /* a save: pause the VM before anything else */
        BOOTCACHE_BLOCKS,                          /* a save: query-block, which disks it carries */
        _BOOTCACHE_KIND_END,
};

/* Migrations leave RAM that lives in a shared file out of the stream. */
#define IGNORE_SHARED_COMMAND                                                                                         \
        "{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": "                              \
        "[{\"capability\": \"x-ignore-shared\", \"state\": true}]}}"
#define IGNORE_SHARED_OFF_COMMAND                                                                                     \
        "{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": "                              \
        "[{\"capability\": \"x-ignore-shared\", \"state\": false}]}}"
#define SNAPSHOT_FDNAME    "vigil-snapshot"
#define GETFD_COMMAND      "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"" SNAPSHOT_FDNAME "\"}}"
#define INCOMING_POLL_USEC (2 * USEC_PER_MSEC) /* a RAM file's restore loads in ~20 ms */

struct qemu_bootcache {
        struct machine *m;
        struct qemu_control *ctl;
        const struct qemu_bootcache_ops *ops;
        void *userdata;
        char key[QEMU_SNAPSHOT_KEY_LEN + 1];
        char *dir;                    /* <boot_cache>/<key> */
        bool restoring;               /* this boot loads the snapshot */
        bool due;                     /* this boot saves one once the guest shell is up */
        bool recovering;              /* re-attached in the middle of a save: finish it */
        bool after_save;              /* the VM saved resumes: the marker goes once its shares are back */
        bool resuming;                /* a restored guest resumes: its marker goes once its shares are back */
        bool again;                   /* re-attached while it did: some shares may be mounted */
        unsigned long long cont_usec; /* CLOCK_REALTIME when QEMU answered the last cont; 0: unknown */
        bool ram_file; /* guest RAM outside the stream: a save copies QEMU's memfd, a restore maps <dir>/ram */
        char *tmp;     /* the save's temporary file (renamed to <dir>/vmstate once complete) */
        char *path;    /* <dir>/vmstate */
        char **disks;  /* the save's disks, relative to the state dir (query-block; the marker's for a re-attach) */
        unsigned long long disk_bytes, disk_usec; /* the save's disk copies: data, time */
        struct event *timer;
        unsigned long long started;
};

static void bootcache_answered(struct qemu_bootcache *q, int kind, const char *reply);
static void bootcache_resume_guest(struct qemu_bootcache *q);
static void bootcache_abort(struct qemu_bootcache *q, const char *why);
static void bootcache_migrate(struct qemu_bootcache *q);
static void bootcache_blocks(struct qemu_bootcache *q, const char *reply);

static char *saving_path(const struct qemu_bootcache *q) {
        char *p;

        return asprintf(&p, "%s/" QEMU_SNAPSHOT_SAVING, q->m->cfg.state_dir) < 0 ? NULL : p;
}

static char *resuming_path(const struct qemu_bootcache *q) {
        char *p;

        return asprintf(&p, "%s/" QEMU_SNAPSHOT_RESUMING, q->m->cfg.state_dir) < 0 ? NULL : p;
}

static int file_sync(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

        return fd < 0 || fdatasync(fd) < 0 ? negative_errno() : 0;
}

/* The saver's own suffix, ".<QEMU pid>" (its temporary files end so). */
static const char *saver_id(const struct qemu_bootcache *q) {
        return strrchr(q->tmp, '.') ?: "";
}

/* The migration to q->tmp completed and the VM stands paused, QEMU's disks
 * flushed: make q->path the snapshot. Guest RAM outside the stream is
 * copied (the VM runs on in the original), then the disks the save carries
 * with their manifest; the manifest is linked as <dir>/disks (for a machine
 * with disks: the first of two identical machines saving at once to link
 * it keeps its snapshot, the other drops its own copies), then the RAM as
 * <dir>/ram (likewise for diskless ones), and only then is vmstate renamed,
 * which makes the snapshot whole. 1: saved, 0: another machine's snapshot
 * is kept. */
static int bootcache_commit(struct qemu_bootcache *q) {
        _cleanup_free_ char *copy = strdup(q->path), *ram = NULL, *ram_tmp = NULL, *manifest_tmp = NULL;
        _cleanup_close_ int in = -EBADF;
        const char *id = saver_id(q), *dir;
        bool linked = false;
        int r = 0;

        if (!copy)
                return -ENOMEM;
        dir = dirname(copy);
        /* On disk before the links: from the manifest's link to the rename
         * is a moment (a manifest older than that without vmstate is a dead
         * save's, qemu_bootdisk_remove_saved()). */
        r = file_sync(q->tmp);
        if (r < 0)
                return r;
        /* A re-attached worker does not know the mode: QEMU's fds say. */
        if (q->ram_file || q->recovering) {
                in = qemu_bootram_open(machine_pid(q->m));
                if (in < 0 && (q->ram_file || in != -ENOENT))
                        return in;
        }
        if (in >= 0) {
                if (asprintf(&ram, "%s/" QEMU_SNAPSHOT_RAM, dir) < 0 || asprintf(&ram_tmp, "%s.tmp%s", ram, id) < 0)
                        return -ENOMEM;
                r = qemu_bootram_copy(in, ram_tmp);
        }
        if (r >= 0 && q->disks) {
                unsigned long long t0 = now_usec();
                r = qemu_bootdisk_stage(dir, q->m->cfg.state_dir, id, q->disks, &manifest_tmp, &q->disk_bytes);
                q->disk_usec = now_usec() - t0;
                if (r >= 0) {
                        r = qemu_bootdisk_commit(dir, manifest_tmp);
                        linked = r >= 0;
                }
        }
        if (r >= 0 && ram_tmp && link(ram_tmp, ram) < 0)
                r = negative_errno();
        if (ram_tmp)
                (void) unlink(ram_tmp);
        if (r < 0 && linked)
                qemu_bootdisk_remove_saved(dir, false); /* this saver's manifest, and its disks */
        if (r < 0)
                qemu_bootdisk_drop(dir, id, strv_length(q->disks));
        if (r == -EEXIST) {
                (void) unlink(q->tmp);
                return 0;
        }
        if (r < 0)
                return r;
        if (rename(q->tmp, q->path) < 0)
                return negative_errno();
        return 1;
}

/* Submit @command with @kind. */
static int bootcache_submit(struct qemu_bootcache *q, int kind, bool startup, const char *command) {
        return qemu_control_submit(q->ctl, QEMU_QMP, kind, startup, command, 0);
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
        q->disks = strv_free(q->disks);
        if (r >= 0)
                r = qemu_snapshot_saving_parse(text, &q->tmp, &q->path, &q->disks);
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
        _cleanup_free_ char *marker = NULL, *copy = NULL;

        if (saving_load(q) > 0) {
                log_info("Boot cache: removing %s, left by a save that did not finish", q->tmp);
                (void) unlink(q->tmp);
                /* Its disk copies too, unless the snapshot's manifest names them. */
                if (q->disks && (copy = strdup(q->path)))
                        qemu_bootdisk_drop(dirname(copy), saver_id(q), strv_length(q->disks));
                if ((marker = saving_path(q)))
                        (void) unlink(marker);
        }
        q->disks = strv_free(q->disks);
        free(q->tmp);
        free(q->path);
        q->tmp = q->path = NULL;
}

/* @cmd gets @ram as the guest's RAM (QEMU's arguments for it): at the end
 * of its argv, or of a start script's `sh -c` line (its "$@" ends QEMU's
 * command line), quoted for the shell there. */
static int cmd_add_ram(struct qemu_cmd *cmd, bool script, const char *ram, unsigned long long memory_mb) {
        _cleanup_strv_free_ char **add = NULL;
        size_t n = strv_length(cmd->argv), k;
        char **v;
        int r;

        r = qemu_snapshot_ram_args(ram, memory_mb, &add);
        if (r < 0)
                return r;
        for (char **a = add; script && *a; a++) {
                _cleanup_free_ char *word = NULL;
                char *line;

                if (guest_shell_quote(*a, &word) < 0 || asprintf(&line, "%s %s", cmd->argv[2], word) < 0)
                        return -ENOMEM;
                free(cmd->argv[2]);
                cmd->argv[2] = line;
        }
        if (script)
                return 0;
        k = strv_length(add);
        v = realloc(cmd->argv, (n + k + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        cmd->argv = v;
        memcpy(v + n, add, (k + 1) * sizeof *v);
        free(TAKE_PTR(add));
        return 0;
}

/* Whether the guest's RAM can live outside the stream, and its size: a
 * direct boot's unless its extra arguments choose the memory; a start
 * script's (@script, its text) if its QEMU command line says `-m <MiB>` and
 * nothing else chooses (qemu_snapshot_script_memory()). */
static bool ram_mappable(const struct machine_config *c, const struct qemu_cmd *cmd, const char *script,
                         unsigned long long *ret_mb) {
        *ret_mb = c->memory_mb;
        if (!c->start_script)
                return qemu_snapshot_ram_mappable(c->extra_args);
        return script &&
               qemu_snapshot_script_memory(script, qemu_env_get(cmd->env, "QEMU_OPTS"), c->extra_args, ret_mb) >= 0;
}

/* A disk QEMU writes that no snapshot can carry, named before QEMU starts:
 * in QEMU_OPTS or the extra arguments of a start script (its own QEMU line
 * is left to the save's query-block), or a direct boot's command line
 * (qemu_snapshot_writable_disk()). */
static bool writable_disk(const struct machine_config *c, const struct qemu_cmd *cmd, char *ret, size_t size) {
        return qemu_snapshot_writable_disk(c->start_script ? qemu_env_get(cmd->env, "QEMU_OPTS") : NULL,
                                           c->start_script ? c->extra_args : cmd->argv, c->state_dir, ret, size) > 0;
}

/* Which snapshot fits this boot: none (cache off), one to load (restoring:
 * QEMU waits for it with -incoming defer), or one to save once the guest
 * shell is up. A direct-boot machine's RAM stays out of the stream: a shared
 * memfd for a save, the snapshot's RAM file mapped private for a restore
 * (and that snapshot is only whole with it). A snapshot's disks go into the
 * state dir before QEMU starts, never over a disk already there. */
int qemu_bootcache_plan(struct qemu_bootcache *q, struct qemu_cmd *cmd, bool only_restore) {
        const struct machine_config *c = &q->m->cfg;
        _cleanup_free_ char *text = NULL, *path = NULL, *ram = NULL, *marker = NULL, *script = NULL, *why = NULL;
        unsigned long long memory_mb;
        char disk[160];
        bool mappable;
        int r;

        q->restoring = q->due = q->recovering = q->ram_file = q->resuming = q->again = false;
        q->key[0] = 0;
        /* A new boot: disks a restore placed for a guest that never ran are no one's (its QEMU was
         * dropped, or its worker died before start()); a resume a dead worker left unfinished
         * concerned the boot before. */
        qemu_bootdisk_unplace(c->state_dir);
        if ((marker = resuming_path(q)))
                (void) unlink(marker);
        free(q->dir);
        q->dir = NULL;
        bootcache_forget_save(q);
        if (!c->boot_cache || !*c->boot_cache)
                return 0;
        if (c->start_script && read_file_max(c->start_script, 1 << 20, &script) < 0)
                script = NULL;
        if (writable_disk(c, cmd, disk, sizeof disk)) {
                if (!only_restore)
                        log_info("Boot cache: off for this VM: it has a disk QEMU writes outside its state dir "
                                 "(%s), and a snapshot carries only the disks in the state dir; booting cold",
                                 disk);
                return 0;
        }
        r = qemu_snapshot_key(cmd->argv, cmd->env, c->state_dir, c->shared_dir, q->key, &text);
        if (r < 0)
                return r;
        if (asprintf(&q->dir, "%s/%s", c->boot_cache, q->key) < 0 ||
            asprintf(&path, "%s/" QEMU_SNAPSHOT_STATE, q->dir) < 0 ||
            asprintf(&ram, "%s/" QEMU_SNAPSHOT_RAM, q->dir) < 0) {
                q->dir = NULL;
                return -ENOMEM;
        }
        mappable = ram_mappable(c, cmd, script, &memory_mb);
        if (access(path, R_OK) < 0 && qemu_bootdisk_refusal(q->dir, &why) > 0) {
                if (!only_restore)
                        log_info("Boot cache: off for this VM: %s (recorded in %s/" QEMU_SNAPSHOT_NO_SNAPSHOT
                                 " by an earlier save); booting cold",
                                 why, q->dir);
                return 0;
        }
        if (access(path, R_OK) < 0 || (mappable && access(ram, R_OK) < 0)) {
                if (only_restore)
                        return 0;
                log_info("Boot cache: no snapshot for this VM (key %s) in %s; booting cold, saving one once the "
                         "guest shell is up",
                         q->key, c->boot_cache);
                /* A RAM file or disks without their vmstate are what a save that died left. */
                if (access(path, F_OK) < 0) {
                        (void) unlink(ram);
                        qemu_bootdisk_remove_saved(q->dir, true);
                }
                q->due = true;
                q->ram_file = mappable;
                return mappable ? cmd_add_ram(cmd, c->start_script, NULL, memory_mb) : 0;
        }
        r = qemu_bootdisk_restore(q->dir, c->state_dir, disk, sizeof disk);
        if (r == -EEXIST) {
                if (!only_restore)
                        log_info("Boot cache: not restoring the snapshot %s: its disk %s exists in the state dir "
                                 "already (kept from an earlier run by -K, or this machine's from an earlier boot), "
                                 "and the snapshot's copy would replace it; booting cold, saving nothing",
                                 path, disk);
                return 0;
        }
        if (r < 0) {
                if (!only_restore)
                        log_warning("Boot cache: not restoring the snapshot %s: its disks could not be put in "
                                    "place (%s); booting cold, saving nothing",
                                    path, strerror(-r));
                return 0;
        }
        if (mappable) {
                r = cmd_add_ram(cmd, c->start_script, ram, memory_mb);
                if (r < 0) {
                        qemu_bootdisk_unplace(c->state_dir);
                        return r;
                }
                q->ram_file = true;
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
        log_info("Boot cache: restoring the snapshot %s instead of booting%s", path,
                 only_restore ? " (loaded ahead of start(), the guest waits paused)" : "");
        return 0;
}

/* The snapshot would not load: move it aside (a later run saves a fresh one),
 * drop its RAM file and disks, and take back the disks the restore placed. */
void qemu_bootcache_discard(struct qemu_bootcache *q, const char *why) {
        char path[4096], bad[4200];

        log_warning("Boot cache: restoring %s/" QEMU_SNAPSHOT_STATE " failed (QEMU %s); booting cold instead", q->dir,
                    why);
        (void) snprintf(path, sizeof path, "%s/" QEMU_SNAPSHOT_STATE, q->dir);
        (void) snprintf(bad, sizeof bad, "%s.bad", path);
        (void) rename(path, bad);
        (void) snprintf(path, sizeof path, "%s/" QEMU_SNAPSHOT_RAM, q->dir);
        (void) unlink(path);
        qemu_bootdisk_remove_saved(q->dir, false);
        /* The cold boot gets what it would have had: no disk, so the start script makes one. */
        qemu_bootdisk_unplace(q->m->cfg.state_dir);
        q->restoring = false;
}

/* Written as the restore begins, before QEMU's fds are stored (the start's
 * end), from which on a worker that dies is followed by one that
 * re-attaches: that one must find it. A new boot removes it. */
static void resuming_mark(const struct qemu_bootcache *q) {
        _cleanup_free_ char *marker = resuming_path(q);
        int fd;

        fd = marker ? open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
        if (fd < 0)
                log_warning("Boot cache: could not write %s (a worker restarted before the guest resumed would not "
                            "know to resume it)",
                            marker ?: "the resume marker");
        safe_close(fd);
}

/* QEMU reads the snapshot from an fd the worker opened and passed with
 * getfd (no `exec:cat`, whose fork and pipe cost ~30-50 ms). */
int qemu_bootcache_load(struct qemu_bootcache *q) {
        _cleanup_free_ char *json = NULL;
        json_object *o = json_object_new_object(), *a = json_object_new_object();
        char uri[4200];
        int fd;

        if (!o || !a) {
                json_object_put(o);
                json_object_put(a);
                return -ENOMEM;
        }
        resuming_mark(q);
        (void) snprintf(uri, sizeof uri, "%s/" QEMU_SNAPSHOT_STATE, q->dir);
        fd = open(uri, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
                (void) snprintf(uri, sizeof uri, "fd:" SNAPSHOT_FDNAME);
        else /* QEMU will say what is wrong with it, and exit */
                (void) snprintf(uri, sizeof uri, "exec:cat '%s/" QEMU_SNAPSHOT_STATE "'", q->dir);
        json_object_object_add(a, "uri", json_object_new_string(uri));
        json_object_object_add(o, "execute", json_object_new_string("migrate-incoming"));
        json_object_object_add(o, "arguments", a);
        json = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        if (!json) {
                safe_close(fd);
                return -ENOMEM;
        }
        if ((q->ram_file && bootcache_submit(q, BOOTCACHE_LOAD_CAPS, true, IGNORE_SHARED_COMMAND) < 0) ||
            (fd >= 0 && qemu_control_submit_fd(q->ctl, BOOTCACHE_LOAD_FD, true, GETFD_COMMAND, fd) < 0) ||
            bootcache_submit(q, BOOTCACHE_LOAD, true, json) < 0 ||
            bootcache_submit(q, BOOTCACHE_INCOMING, true, "{\"execute\": \"query-migrate\"}") < 0)
                return -ENOMEM;
        return 0;
}

/* The restored guest runs: its clock is the snapshot's (set it to the
 * host's, taken as the command leaves), its 9p shares were unmounted for the
 * save (mount them again). The agent does both if it waits; the time goes
 * out as the job begins. */
static void clock_begin(struct shell_job *j) {
        struct qemu_bootcache *q = j->userdata;
        char *clock;

        if (qemu_snapshot_agent_command(now_realtime_usec(), q->cont_usec, &clock) < 0)
                return;
        free(j->command);
        j->command = clock;
}

static void shell_clock_begin(struct shell_job *j, bool restored) {
        char *clock;

        if (qemu_snapshot_clock_command(now_realtime_usec(), restored, &clock) < 0)
                return;
        free(j->command);
        j->command = clock;
}

/* After a restore with no agent in the snapshot every share is unmounted. */
static void shell_clock_begin_restored(struct shell_job *j) {
        shell_clock_begin(j, true);
}

/* Otherwise mount only those missing (the agent may have mounted some). */
static void shell_clock_begin_missing(struct shell_job *j) {
        shell_clock_begin(j, false);
}

/* A job of the resume, first in the queue: @begin makes its command as it
 * begins (the host's time goes out with it; @command if that fails). */
static int submit_resume_job(struct qemu_bootcache *q, const char *command, void (*begin)(struct shell_job *j),
                             void (*done)(struct shell_job *j, int error, const char *message, int status,
                                          uint8_t *output, size_t len)) {
        struct shell_job *j = shell_job_new(SHELL_JOB_EXEC, command);

        if (!j)
                return -ENOMEM;
        j->timeout_s = 30;
        j->begin = begin;
        j->done = done;
        j->userdata = q;
        machine_shell_submit_first(q->m->shell, j);
        return 0;
}

/* The resume is over, whichever way: its marker goes (after a save, the
 * save's). */
static void resume_finished(struct qemu_bootcache *q) {
        _cleanup_free_ char *marker = NULL;

        if (q->resuming) {
                q->resuming = q->again = false;
                marker = resuming_path(q);
        } else if (q->after_save) {
                q->after_save = false;
                q->recovering = false;
                marker = saving_path(q);
        }
        if (marker)
                (void) unlink(marker);
}

static void shell_clock_done(struct shell_job *j, int error, const char *message, int status, uint8_t *output,
                             size_t len) {
        struct qemu_bootcache *q = j->userdata;

        free(output);
        if (error < 0 || status != 0)
                log_warning("Boot cache: mounting the guest's shares and setting its clock failed in the guest (%s, "
                            "status %d)",
                            message ?: "ran", status);
        else
                log_info("Boot cache: the guest's shell set its clock and mounted its shares (%.0f ms)",
                         (double) (now_usec() - j->started) / USEC_PER_MSEC);
        resume_finished(q);
}

/* The agent's job ended: done, or the shell does it in the next job (no
 * agent in the snapshot: a guest of another architecture, VIGIL_RESUME_AGENT=0
 * or an older vigil at save time; or the agent failed). */
static void resumed(struct shell_job *j, int error, const char *message, int status, uint8_t *output, size_t len) {
        struct qemu_bootcache *q = j->userdata;
        bool absent = error >= 0 && status == QEMU_SNAPSHOT_AGENT_ABSENT;

        if (error >= 0 && status == 0 && output && memmem(output, len, RESUME_AGENT_DONE, strlen(RESUME_AGENT_DONE))) {
                log_info("Boot cache: vigil-resume set the guest's clock and mounted its shares (%.0f ms)",
                         (double) (now_usec() - j->started) / USEC_PER_MSEC);
                free(output);
                resume_finished(q);
                return;
        }
        free(output);
        if (error < 0) {
                log_warning("Boot cache: could not mount the guest's shares and set its clock: %s",
                            message ?: "the job failed");
                resume_finished(q);
                return;
        }
        if (!absent)
                log_warning("Boot cache: vigil-resume failed in the guest (status %d, the console says why); the "
                            "shell mounts the shares and sets the clock instead",
                            status);
        /* Only a fresh restore has every share unmounted. */
        if (submit_resume_job(q, "true",
                              absent && q->resuming && !q->again ? shell_clock_begin_restored
                                                                 : shell_clock_begin_missing,
                              shell_clock_done) < 0)
                resume_finished(q);
}

/* A restored guest's first job: its shares, then its clock (one round
 * trip by the agent). Until it is over, the marker in the state dir
 * (resuming_mark()) tells a worker that re-attaches to do it again. */
static void bootcache_resume_restored(struct qemu_bootcache *q) {
        q->resuming = true;
        if (submit_resume_job(q, "true", clock_begin, resumed) < 0)
                resume_finished(q);
}

void qemu_bootcache_continued(struct qemu_bootcache *q) {
        if (!q || !q->restoring)
                return;
        q->cont_usec = now_realtime_usec();
        qemu_bootdisk_keep(q->m->cfg.state_dir); /* the guest runs on them */
}

void qemu_bootcache_restored(struct qemu_bootcache *q) {
        struct machine *m = q->m;

        log_info("Boot cache: restored in %.2f s (key %s)", (double) (now_usec() - q->started) / USEC_PER_SEC, q->key);
        (void) worker_send_event(m->w, "boot-restored", "restored the boot snapshot %s", q->key);
        machine_shell_restored(m->shell);
        bootcache_resume_restored(q);
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
                int r = access(q->tmp, F_OK) < 0 ? 2 : bootcache_commit(q);
                if (r == 2)
                        log_info("Boot cache: the interrupted save had completed (%s)", q->path);
                else if (r < 0) {
                        log_warning("Boot cache: could not put %s in place as %s: %s; removing it", q->tmp, q->path,
                                    strerror(-r));
                        (void) unlink(q->tmp);
                } else if (r == 0)
                        log_info("Boot cache: an identical machine saved %s first; keeping that one", q->path);
                else
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
        char status[32], why[128];
        int r;

        switch ((enum bootcache_kind) kind) {
        case BOOTCACHE_INCOMING:
                /* QEMU exits if the snapshot does not load; until loaded, ask again. */
                migrate_status(reply, status, sizeof status);
                if (!streq(status, "completed"))
                        machine_timer_set(q->timer, INCOMING_POLL_USEC);
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
                r = bootcache_commit(q);
                if (r < 0) {
                        (void) snprintf(why, sizeof why, "could not put the saved state in place: %s", strerror(-r));
                        bootcache_abort(q, why);
                        return;
                }
                if (r == 0)
                        log_info("Boot cache: an identical machine saved %s first; keeping that one", q->path);
                else if (q->disks)
                        log_info("Boot cache: saved %s in %.2f s with %zu disk%s (%.1f MiB of data, copied in %.0f "
                                 "ms)",
                                 q->path, (double) (now_usec() - q->started) / USEC_PER_SEC, strv_length(q->disks),
                                 strv_length(q->disks) == 1 ? "" : "s", (double) q->disk_bytes / (1 << 20),
                                 (double) q->disk_usec / USEC_PER_MSEC);
                else
                        log_info("Boot cache: saved %s in %.2f s", q->path,
                                 (double) (now_usec() - q->started) / USEC_PER_SEC);
                if (qemu_control_submit(q->ctl, QEMU_QMP, BOOTCACHE_CONT, false, "{\"execute\": \"cont\"}", 0) < 0)
                        bootcache_abort(q, "out of memory");
                return;
        case BOOTCACHE_CONT:
                q->cont_usec = now_realtime_usec();
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
        case BOOTCACHE_SAVE_CAPS:
                if (reply && strstr(reply, "\"error\""))
                        bootcache_abort(q, reply);
                else
                        bootcache_migrate(q);
                return;
        case BOOTCACHE_BLOCKS:
                bootcache_blocks(q, reply);
                return;
        case BOOTCACHE_LOAD:      /* QEMU exits if the snapshot does not load */
        case BOOTCACHE_LOAD_CAPS: /* and if without it, the stream does not fit */
        case BOOTCACHE_LOAD_FD:   /* and if without it, there is no stream */
        case BOOTCACHE_CAPS_OFF:
        case BOOTCACHE_STOP:
        case _BOOTCACHE_KIND_END:
                return;
        }
}

/* The original VM runs on after the save: mount its shares again, set its
 * clock (it stood paused), let the queue go. The save is over, whatever
 * became of it, once the shares are back (resume_finished()). */
static void bootcache_resume_guest(struct qemu_bootcache *q) {
        /* A migration the test itself asks for (M_QMP) takes all of the RAM. */
        (void) bootcache_submit(q, BOOTCACHE_CAPS_OFF, false, IGNORE_SHARED_OFF_COMMAND);
        q->after_save = submit_resume_job(q, QEMU_SNAPSHOT_REMOUNT_COMMAND, clock_begin, resumed) >= 0;
        machine_shell_hold(q->m->shell, false);
}

static void bootcache_abort(struct qemu_bootcache *q, const char *why) {
        log_warning("Boot cache: not saving a snapshot: %.600s", why);
        if (q->tmp)
                (void) unlink(q->tmp);
        (void) evtimer_del(q->timer);
        /* The VM may be paused after a failed or finished migration; the
         * answer to cont lets the guest go on (bootcache_resume_guest()). */
        if (qemu_control_submit(q->ctl, QEMU_QMP, BOOTCACHE_CONT, false, "{\"execute\": \"cont\"}", 0) < 0)
                bootcache_resume_guest(q);
}

/* The QEMU_SNAPSHOT_SAVING marker for q->tmp, q->path and q->disks,
 * replaced whole (a worker that re-attaches reads one or the other). */
static int saving_write(struct qemu_bootcache *q) {
        _cleanup_free_ char *marker = saving_path(q), *text = NULL;
        int r;

        if (!marker)
                return -ENOMEM;
        r = qemu_snapshot_saving_format(q->tmp, q->path, q->disks, &text);
        return r < 0 ? r : write_file_atomic(marker, text, 0666, false);
}

/* query-block answered while the VM stands paused: every disk QEMU writes
 * must be a regular file in the state dir (the snapshot carries a copy);
 * any other means no snapshot for this key, recorded so that later runs
 * boot cold without pausing the guest again. Then the migration. */
static void bootcache_blocks(struct qemu_bootcache *q, const char *reply) {
        _cleanup_free_ char *why = NULL;
        _cleanup_strv_free_ char **disks = NULL;
        int r;

        r = qemu_bootdisk_choose(reply, q->m->cfg.state_dir, &disks, &why);
        if (r < 0) {
                bootcache_abort(q, r == -EBADMSG ? "QEMU's query-block answer could not be parsed" : "out of memory");
                return;
        }
        if (why) {
                r = qemu_bootdisk_refuse(q->dir, why);
                if (r < 0)
                        log_warning("Boot cache: could not record why this VM gets no snapshot in %s: %s", q->dir,
                                    strerror(-r));
                bootcache_abort(q, why);
                return;
        }
        if (disks) {
                q->disks = TAKE_PTR(disks);
                /* A worker that re-attaches mid-save copies them too. */
                r = saving_write(q);
                if (r < 0) {
                        bootcache_abort(q, "could not record the disks in the saving marker");
                        return;
                }
        }
        if (!q->ram_file)
                bootcache_migrate(q);
        else if (bootcache_submit(q, BOOTCACHE_SAVE_CAPS, false, IGNORE_SHARED_COMMAND) < 0)
                bootcache_abort(q, "out of memory");
}

/* Save the VM: QEMU pauses it, writes its device state and the RAM that is
 * not a shared file to q->tmp, and leaves it paused until cont. */
static void bootcache_migrate(struct qemu_bootcache *q) {
        _cleanup_free_ char *json = NULL;
        json_object *o, *a;
        char uri[4300];

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
        log_info("Boot cache: saving a snapshot of the VM to %s", q->tmp);
        if (!json || bootcache_submit(q, BOOTCACHE_MIGRATE, false, json) < 0)
                bootcache_abort(q, "out of memory");
}

/* The shares are unmounted: save the VM (a RAM file stays out of the stream:
 * x-ignore-shared first). */
static void bootcache_prepared(struct shell_job *j, int error, const char *message, int status, uint8_t *output,
                               size_t len) {
        struct qemu_bootcache *q = j->userdata;

        free(output);
        if (error < 0 || status != 0) {
                log_warning("Boot cache: not saving a snapshot: unmounting the guest's 9p shares failed (%s; QEMU "
                            "cannot save a VM with a 9p share mounted: a NixOS guest needs its /nix/store on a "
                            "disk image, virtualisation.mountHostNixStore = false and useNixStoreImage = true)",
                            message ?: "the console says which share is busy");
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
        q->started = now_usec();
        /* Paused now, not when the migration gets to it (its set-up, and for
         * exec: a shell and cat, take 50-70 ms): the agent waiting in the
         * guest counts the time the guest runs from here on, and its clock
         * is off by what ran before the pause. */
        (void) bootcache_submit(q, BOOTCACHE_STOP, false, "{\"execute\": \"stop\"}");
        /* Paused: the disks QEMU writes say whether there is a snapshot at all. */
        if (bootcache_submit(q, BOOTCACHE_BLOCKS, false, "{\"execute\": \"query-block\"}") < 0)
                bootcache_abort(q, "out of memory");
}

/* The guest shell is up for the first time in a boot that should be saved. */
void qemu_bootcache_guest_ready(struct qemu_bootcache *q) {
        struct machine *m = q->m;
        struct shell_job *j;

        _cleanup_free_ char *marker = saving_path(q), *prepare = NULL;
        const char *env;

        if (!q->due)
                return;
        q->due = false;
        q->cont_usec = 0;
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
        q->disks = strv_free(q->disks);
        if (saving_write(q) < 0) {
                log_warning("Boot cache: not saving a snapshot: could not write %s", marker ?: "the marker");
                if (marker)
                        (void) unlink(marker);
                return;
        }
        env = getenv("VIGIL_RESUME_AGENT");
        if (qemu_snapshot_prepare_command(env && streq(env, "0") ? NULL : RESUME_AGENT_BASE64, &prepare) < 0 ||
            !(j = shell_job_new(SHELL_JOB_EXEC, prepare)))
                return;
        j->timeout_s = 30;
        j->done = bootcache_prepared;
        j->userdata = q;
        machine_shell_submit_first(m->shell, j);
}

bool qemu_bootcache_restoring(const struct qemu_bootcache *q) {
        return q && q->restoring;
}

double qemu_bootcache_restore_clock(struct qemu_bootcache *q, bool reset) {
        double s = (double) (now_usec() - q->started) / USEC_PER_SEC;

        if (reset)
                q->started = now_usec();
        return s;
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
        if (r->kind == BOOTCACHE_CAPS_OFF)
                log_debug("Boot cache: x-ignore-shared stays on: %s", why);
        else if (r->kind == BOOTCACHE_STOP)
                log_debug("Boot cache: QEMU did not pause the VM before the save (the migration will): %s", why);
        else if (r->kind == BOOTCACHE_CONT) {
                log_warning("Boot cache: QEMU did not continue the VM after the save: %s", why);
                bootcache_resume_guest(q);
        } else
                bootcache_abort(q, why);
        return true;
}

void qemu_bootcache_attached(struct qemu_bootcache *q) {
        _cleanup_free_ char *resuming = resuming_path(q);

        /* The QEMU re-attached to owns its disks, whether or not the dead worker saw its cont. */
        qemu_bootdisk_keep(q->m->cfg.state_dir);
        if (resuming && access(resuming, F_OK) == 0) {
                log_warning("Boot cache: the previous worker died while the restored guest resumed; mounting its "
                            "shares and setting its clock again");
                q->again = true;
                q->cont_usec = 0; /* not known to this worker: the agent, if it still waits, counts from the job */
                bootcache_resume_restored(q);
                return;
        }
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
        strv_free(q->disks);
        free(q);
        return NULL;
}
