/* SPDX-License-Identifier: MIT */
/*
 * qemu-snapshot.c owns what the boot cache computes without a VM: the key
 * that says whether a saved boot fits the VM about to start (everything that
 * shapes it, and nothing that differs between runs of the same test), the
 * guest commands around a snapshot, and QEMU's arguments that keep a
 * machine's RAM out of the migration stream. qemu-bootcache.c takes and
 * restores the snapshots.
 */
#include <libgen.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>

#include "macro.h"
#include "qemu-snapshot.h"
#include "resume-agent.h"

struct text {
        char *buf;
        size_t len, alloc;
        bool oom;
};

static void text_add(struct text *t, const char *s, size_t n) {
        if (t->oom)
                return;
        if (t->len + n + 1 > t->alloc) {
                size_t a = MAX(t->alloc * 2, t->len + n + 1 + 256);
                char *p = realloc(t->buf, a);
                if (!p) {
                        t->oom = true;
                        return;
                }
                t->buf = p;
                t->alloc = a;
        }
        memcpy(t->buf + t->len, s, n);
        t->len += n;
        t->buf[t->len] = 0;
}

static void text_printf(struct text *t, const char *fmt, ...) _printf_(2, 3);
static void text_printf(struct text *t, const char *fmt, ...) {
        char buf[512];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        if (n > 0)
                text_add(t, buf, MIN((size_t) n, sizeof buf - 1));
}

/* @s with each of @from[i] replaced by @to[i] (first match wins at a position). */
static void text_add_normalised(struct text *t, const char *s, const char *const *from, const char *const *to,
                                size_t n) {
        while (*s) {
                size_t i;
                for (i = 0; i < n; i++)
                        if (from[i] && *from[i] && strncmp(s, from[i], strlen(from[i])) == 0)
                                break;
                if (i < n) {
                        text_add(t, to[i], strlen(to[i]));
                        s += strlen(from[i]);
                } else
                        text_add(t, s++, 1);
        }
}

/* The identity of a file an argument names: absolute paths, and bare names
 * found in PATH (the QEMU binary). */
static void text_add_file(struct text *t, const char *word) {
        char path[8400];
        struct stat st;

        if (word[0] == '/')
                (void) snprintf(path, sizeof path, "%s", word);
        else if (!strchr(word, '/') && strncmp(word, "qemu-system-", 12) == 0) {
                const char *p = getenv("PATH") ?: "/usr/bin:/bin";
                path[0] = 0;
                while (*p) {
                        size_t len = strcspn(p, ":");
                        (void) snprintf(path, sizeof path, "%.*s/%s", (int) len, p, word);
                        if (access(path, X_OK) == 0)
                                break;
                        path[0] = 0;
                        p += len + (p[len] == ':');
                }
                if (!path[0])
                        return;
        } else
                return;
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                return;
        text_printf(t, "file %s size %lld mtime %lld.%09ld ino %llu\n", path, (long long) st.st_size,
                    (long long) st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (unsigned long long) st.st_ino);
}

/* Every word of @s that looks like a file (a start script's sh -c line). */
static void text_add_files_of(struct text *t, const char *s) {
        char word[4096];

        while (*s) {
                size_t len = strcspn(s, " \t=,");
                if (len > 0 && len < sizeof word) {
                        memcpy(word, s, len);
                        word[len] = 0;
                        text_add_file(t, word);
                }
                s += len;
                if (*s)
                        s++;
        }
}

static uint64_t fnv1a64(const char *s, size_t n) {
        uint64_t h = 0xcbf29ce484222325ull;

        for (size_t i = 0; i < n; i++) {
                h ^= (uint8_t) s[i];
                h *= 0x100000001b3ull;
        }
        return h;
}

int qemu_snapshot_key(char *const *argv, char *const *env, const char *state_dir, const char *shared_dir,
                      char ret_key[QEMU_SNAPSHOT_KEY_LEN + 1], char **ret_text) {
        _cleanup_free_ char *copy = strdup(state_dir);
        struct text t = {};
        const char *from[3], *to[3] = {"@STATE@", "@SHARED@", "@RUN@"};
        uint64_t h;

        if (!copy)
                return -ENOMEM;
        from[0] = state_dir;
        from[1] = shared_dir;
        from[2] = dirname(copy);
        text_add(&t, "vigil boot cache 1\n", 19);
        for (size_t i = 0; argv && argv[i]; i++) {
                text_add(&t, "arg ", 4);
                text_add_normalised(&t, argv[i], from, to, ELEMENTSOF(from));
                text_add(&t, "\n", 1);
        }
        for (size_t i = 0; env && env[i]; i++)
                if (strncmp(env[i], "QEMU_", 5) == 0) {
                        text_add(&t, "env ", 4);
                        text_add_normalised(&t, env[i], from, to, ELEMENTSOF(from));
                        text_add(&t, "\n", 1);
                }
        for (size_t i = 0; argv && argv[i]; i++)
                text_add_files_of(&t, argv[i]);
        if (t.oom) {
                free(t.buf);
                return -ENOMEM;
        }
        h = fnv1a64(t.buf, t.len);
        (void) snprintf(ret_key, QEMU_SNAPSHOT_KEY_LEN + 1, "%016llx", (unsigned long long) h);
        if (ret_text)
                *ret_text = TAKE_PTR(t.buf);
        free(t.buf);
        return 0;
}

/* Without the agent: the host's time @usec goes out with the command. The
 * guest mounts its shares first: the first exec after a restore costs ~0.1 s
 * under TCG (its translation cache is not part of a snapshot; much more
 * under load), the next ~10-30 ms. Then it sets its clock to @usec plus what
 * its /proc/uptime says passed meanwhile (two decimals: centiseconds). A
 * restored guest has every share of /run/vigil-9p unmounted (the save's
 * prepare command did that), and running little bash code pays too: no
 * check of /proc/mounts. A guest whose save a re-attached worker finished
 * has some mounted, or all: it mounts the missing ones, and with none
 * missing a first `date` pays the first exec's price and a second one
 * corrects the clock. */
int qemu_snapshot_clock_command(unsigned long long usec, bool restored, char **ret) {
        unsigned long long cs = usec / 10000;

        if (restored)
                return asprintf(ret,
                                "read -r u0 _ </proc/uptime; mount -a -T /run/vigil-9p || s=$?; "
                                "read -r u1 _ </proc/uptime; date -u -s @$(((%llu + 10#${u1/./} - 10#${u0/./} + "
                                "50) / 100)) >/dev/null && exit ${s:-0}",
                                cs) < 0
                               ? -ENOMEM
                               : 0;
        return asprintf(ret,
                        "read -r u0 _ </proc/uptime; if %s; then mount -a -T /run/vigil-9p.todo || s=$?; "
                        "else date -u -s @%llu >/dev/null; fi; read -r u1 _ </proc/uptime; "
                        "date -u -s @$(((%llu + 10#${u1/./} - 10#${u0/./} + 50) / 100)) >/dev/null && "
                        "exit ${s:-0}",
                        QEMU_SNAPSHOT_SHARES_MISSING, (cs + 50) / 100, cs) < 0
                       ? -ENOMEM
                       : 0;
}

int qemu_snapshot_agent_command(unsigned long long usec, unsigned long long cont_usec, char **ret) {
        char cont[48] = "";

        /* Only an agent that says it reads it gets the third field. */
        if (cont_usec > 0)
                (void) snprintf(cont, sizeof cont, "${v:+ %llu}", cont_usec);
        return asprintf(ret,
                        "if read -r p v 2>/dev/null <" RESUME_AGENT_PID " && kill -0 \"$p\" 2>/dev/null; then "
                        "read -r u0 _ </proc/uptime; echo \"%llu ${u0/./}%s\" >" RESUME_AGENT_IN "; "
                        "IFS= read -r a <" RESUME_AGENT_OUT " || a='no answer'; "
                        "if [ \"$a\" = ok ]; then echo '" RESUME_AGENT_DONE "'; exit 0; fi; "
                        "echo \"vigil-resume: $a\" >&2; exit %d; fi; exit %d",
                        usec, cont, QEMU_SNAPSHOT_AGENT_FAILED, QEMU_SNAPSHOT_AGENT_ABSENT) < 0
                       ? -ENOMEM
                       : 0;
}

int qemu_snapshot_prepare_command(const char *agent_base64, char **ret) {
        char *s;
        int r;

        if (!agent_base64 || !*agent_base64)
                r = asprintf(&s, "%s", QEMU_SNAPSHOT_UNMOUNT_COMMAND);
        else
                r = asprintf(&s,
                             "%s; if [ \"$HOSTTYPE\" = " RESUME_AGENT_ARCH " ]; then { printf %%s '%s' | base64 -d "
                             ">" RESUME_AGENT_PATH " && chmod 700 " RESUME_AGENT_PATH " && rm -f " RESUME_AGENT_IN
                             " " RESUME_AGENT_OUT " " RESUME_AGENT_PID " && mkfifo -m 600 " RESUME_AGENT_IN
                             " " RESUME_AGENT_OUT " && " RESUME_AGENT_PATH " </dev/null >/dev/null 2>&1; } "
                             "2>/dev/null || rm -f " RESUME_AGENT_PATH " " RESUME_AGENT_IN " " RESUME_AGENT_OUT
                             " " RESUME_AGENT_PID "; fi",
                             QEMU_SNAPSHOT_UNMOUNT_COMMAND, agent_base64);
        if (r < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

bool qemu_snapshot_ram_mappable(char *const *argv) {
        static const char *const own[] = {"-m", "-mem-path", "-mem-prealloc", "-numa"};

        for (size_t i = 0; argv && argv[i]; i++) {
                if (strstr(argv[i], "memory-backend"))
                        return false;
                for (size_t k = 0; k < ELEMENTSOF(own); k++)
                        if (streq(argv[i], own[k]))
                                return false;
        }
        return true;
}

/* Whitespace-separated words, as the shell splits the script's unquoted
 * QEMU command line and $QEMU_OPTS; @fn sees each (NUL-terminated copy). */
static int words_each(const char *text, int (*fn)(const char *word, void *userdata), void *userdata) {
        char word[1024];

        for (const char *p = text ?: ""; *p;) {
                size_t n = strcspn(p, " \t\n\\");
                if (n > 0) {
                        /* Cut: options are short, and a disk's argument is only
                         * ever looked into for a few words (then cut means "writable"). */
                        (void) snprintf(word, sizeof word, "%.*s", (int) MIN(n, sizeof word - 1), p);
                        int r = fn(word, userdata);
                        if (r != 0)
                                return r;
                }
                p += n;
                p += strspn(p, " \t\n\\");
        }
        return 0;
}

struct script_memory {
        bool after_exec, in_qemu, after_m;
        unsigned n;
        unsigned long long mb;
};

/* Whether @word (quotes aside) names a QEMU binary: qemu-kvm, qemu-system-*. */
static bool word_is_qemu(const char *word) {
        const char *base = strrchr(word, '/');

        base = base ? base + 1 : word + (*word == '\'' || *word == '"');
        return strncmp(base, "qemu-kvm", 8) == 0 || strncmp(base, "qemu-system-", 12) == 0;
}

/* -ENOENT if @word chooses the memory (-m, -numa, a backend, ...). */
static int foreign_word(const char *word, void *userdata) {
        char *one[] = {(char *) word, NULL};

        return qemu_snapshot_ram_mappable(one) ? 0 : -ENOENT;
}

/* Only the `-m` of the command the script execs counts: elsewhere `-m` is
 * another program's (`install -m 755`). */
static int script_memory_word(const char *word, void *userdata) {
        struct script_memory *sm = userdata;
        char *end;

        if (sm->after_m) {
                sm->after_m = false;
                errno = 0;
                sm->mb = strtoull(word, &end, 10);
                if (word[0] < '1' || word[0] > '9' || *end || errno || sm->mb > (1ULL << 22))
                        return -ENOENT; /* a unit, a size=... list, a variable: not ours to read */
                sm->n++;
                return 0;
        }
        if (sm->after_exec && word_is_qemu(word))
                sm->in_qemu = true;
        sm->after_exec = streq(word, "exec");
        if (sm->in_qemu && streq(word, "-m")) {
                sm->after_m = true;
                return 0;
        }
        return sm->in_qemu ? foreign_word(word, NULL) : 0;
}

int qemu_snapshot_script_memory(const char *script, const char *qemu_opts, char *const *extra_args,
                                unsigned long long *ret_mb) {
        struct script_memory sm = {};
        int r;

        r = words_each(script, script_memory_word, &sm);
        if (r < 0 || sm.n != 1 || sm.after_m)
                return -ENOENT;
        r = words_each(qemu_opts, foreign_word, NULL);
        if (r < 0 || !qemu_snapshot_ram_mappable(extra_args))
                return -ENOENT;
        *ret_mb = sm.mb;
        return 0;
}

/* Options whose next argument is a disk QEMU may write. */
static const char *const disk_options[] = {"-drive", "-hda", "-hdb", "-hdc", "-hdd", "-blockdev", "-pflash"};

static bool is_disk_option(const char *word) {
        for (size_t i = 0; i < ELEMENTSOF(disk_options); i++)
                if (streq(word, disk_options[i]))
                        return true;
        return false;
}

/* Whether the argument of a disk option leaves the disk as it was: read-only,
 * or written to a temporary overlay; or NixOS's store image, which its
 * start script copies afresh at every start from the same built image and
 * the guest mounts read-only. */
static bool disk_unwritten(const char *arg) {
        return strstr(arg, "readonly=on") || strstr(arg, "read-only=on") || strstr(arg, "snapshot=on") ||
               strstr(arg, "/store.img");
}

struct disk_scan {
        bool after_exec, in_qemu, after_option, whole; /* whole: every word is QEMU's */
        char *ret;
        size_t size;
};

static int disk_word(const char *word, void *userdata) {
        struct disk_scan *ds = userdata;

        if (!ds->whole) {
                if (ds->after_exec && word_is_qemu(word))
                        ds->in_qemu = true;
                ds->after_exec = streq(word, "exec");
                if (!ds->in_qemu)
                        return 0;
        }
        if (ds->after_option) {
                ds->after_option = false;
                if (disk_unwritten(word))
                        return 0;
                (void) snprintf(ds->ret, ds->size, "%s", word);
                return 1;
        }
        ds->after_option = is_disk_option(word);
        return 0;
}

int qemu_snapshot_writable_disk(const char *script, const char *qemu_opts, char *const *argv, char *ret, size_t size) {
        struct disk_scan ds = {.ret = ret, .size = size};

        if (words_each(script, disk_word, &ds) > 0)
                return 1;
        ds = (struct disk_scan){.whole = true, .ret = ret, .size = size};
        if (words_each(qemu_opts, disk_word, &ds) > 0)
                return 1;
        for (size_t i = 0; argv && argv[i]; i++)
                if (disk_word(argv[i], &ds) > 0)
                        return 1;
        return 0;
}

int qemu_snapshot_ram_args(const char *path, unsigned long long memory_mb, char ***ret) {
        struct text t = {};
        char **v;

        text_printf(&t, "memory-backend-%s,id=" QEMU_SNAPSHOT_RAM_ID ",size=%lluM,share=%s", path ? "file" : "memfd",
                    memory_mb, path ? "off" : "on");
        if (path)
                text_add(&t, ",mem-path=", 10);
        /* QEMU's option syntax: a comma in a value is written twice. */
        for (const char *p = path ?: ""; *p; p++) {
                text_add(&t, p, 1);
                if (*p == ',')
                        text_add(&t, p, 1);
        }
        if (t.oom)
                goto oom;
        v = calloc(5, sizeof *v);
        if (!v)
                goto oom;
        v[0] = strdup("-object");
        v[1] = TAKE_PTR(t.buf);
        v[2] = strdup("-machine");
        v[3] = strdup("memory-backend=" QEMU_SNAPSHOT_RAM_ID);
        if (!v[0] || !v[2] || !v[3]) {
                strv_free(v);
                return -ENOMEM;
        }
        *ret = v;
        return 0;
oom:
        free(t.buf);
        return -ENOMEM;
}

enum qemu_snapshot_migration qemu_snapshot_migration_of(const char *status) {
        static const char *const none[] = {"", "none", "failed", "cancelled", "cancelling"};

        if (streq(status, "completed"))
                return QEMU_SNAPSHOT_MIGRATION_COMPLETED;
        for (size_t i = 0; i < ELEMENTSOF(none); i++)
                if (streq(status, none[i]))
                        return QEMU_SNAPSHOT_MIGRATION_NONE;
        return QEMU_SNAPSHOT_MIGRATION_RUNNING;
}

int qemu_snapshot_saving_format(const char *tmp, const char *path, char **ret) {
        char *s;

        if (tmp[0] != '/' || path[0] != '/' || strchr(tmp, '\n') || strchr(path, '\n'))
                return -EINVAL;
        if (asprintf(&s, "%s\n%s\n", tmp, path) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int qemu_snapshot_saving_parse(const char *text, char **ret_tmp, char **ret_path) {
        const char *nl = strchr(text, '\n'), *end;
        _cleanup_free_ char *tmp = NULL, *path = NULL;

        if (!nl || text[0] != '/' || nl[1] != '/')
                return -EBADMSG;
        end = strchr(nl + 1, '\n');
        if (!end || end[1])
                return -EBADMSG;
        tmp = strndup(text, nl - text);
        path = strndup(nl + 1, end - nl - 1);
        if (!tmp || !path)
                return -ENOMEM;
        *ret_tmp = TAKE_PTR(tmp);
        *ret_path = TAKE_PTR(path);
        return 0;
}
