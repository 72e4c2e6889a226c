/* SPDX-License-Identifier: MIT */
/*
 * qemu-snapshot.c owns what the boot cache computes without a VM: the key
 * that says whether a saved boot fits the VM about to start (everything that
 * shapes it, and nothing that differs between runs of the same test), the
 * guest commands around a snapshot, QEMU's arguments that keep a
 * machine's RAM out of the migration stream, and which disks a snapshot
 * carries (the rule, query-block's answer, the manifest). qemu-bootcache.c
 * takes and restores the snapshots, qemu-bootdisk.c copies their disks.
 */
#include <libgen.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>

#include "json-util.h"
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
 * found in PATH (the QEMU binary); not those in the state dir @state_dir,
 * which are the run's own (a disk there is carried with the snapshot, and
 * its identity changes with every write). */
static void text_add_file(struct text *t, const char *word, const char *state_dir) {
        size_t n = strlen(state_dir);
        char path[8400];
        struct stat st;

        if (n > 0 && strncmp(word, state_dir, n) == 0 && word[n] == '/')
                return;
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
static void text_add_files_of(struct text *t, const char *s, const char *state_dir) {
        char word[4096];

        while (*s) {
                size_t len = strcspn(s, " \t=,");
                if (len > 0 && len < sizeof word) {
                        memcpy(word, s, len);
                        word[len] = 0;
                        text_add_file(t, word, state_dir);
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
                text_add_files_of(&t, argv[i], state_dir);
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

/* Whether the argument of a disk option leaves the disk as it was: read-only,
 * or written to a temporary overlay; or NixOS's store image, which its
 * start script copies afresh at every start from the same built image and
 * the guest mounts read-only. */
static bool disk_unwritten(const char *arg) {
        return strstr(arg, "readonly=on") || strstr(arg, "read-only=on") || strstr(arg, "snapshot=on") ||
               strstr(arg, "/store.img");
}

/* The file a disk option's argument names: a -drive's file=, a -blockdev's
 * filename=, or the whole argument of -hda..-hdd and -pflash; "" if none
 * (a -blockdev whose file is another node: the save decides). */
static void disk_file(const char *option, const char *arg, char *ret, size_t size) {
        static const char *const keys[] = {"file=", "filename="};

        ret[0] = 0;
        if (!streq(option, "-drive") && !streq(option, "-blockdev")) {
                (void) snprintf(ret, size, "%s", arg);
                return;
        }
        for (const char *p = arg; *p;) {
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        if (strncmp(p, keys[i], strlen(keys[i])) == 0) {
                                const char *v = p + strlen(keys[i]);
                                (void) snprintf(ret, size, "%.*s", (int) strcspn(v, ","), v);
                                return;
                        }
                p += strcspn(p, ",");
                p += *p == ',';
        }
}

/* Whether @file, named before QEMU runs, can never be carried: an absolute
 * path outside the state dir, or a protocol. A relative name, or a
 * variable the shell expands later, is left to the save. */
static bool disk_never_carried(const char *file, const char *state_dir) {
        const char *colon = strchr(file, ':');

        if (!*file || strchr(file, '$'))
                return false;
        if (colon && (!strchr(file, '/') || colon < strchr(file, '/')))
                return true;
        return file[0] == '/' &&
               qemu_snapshot_disk_rule(file, true, state_dir, NULL, NULL) == QEMU_SNAPSHOT_DISK_OUTSIDE;
}

struct disk_scan {
        const char *state_dir;
        const char *option; /* the disk option the next word belongs to */
        char *ret;
        size_t size;
};

static int disk_word(const char *word, void *userdata) {
        struct disk_scan *ds = userdata;
        char file[1024];

        if (ds->option) {
                const char *option = ds->option;
                ds->option = NULL;
                disk_file(option, word, file, sizeof file);
                if (disk_unwritten(word) || !disk_never_carried(file, ds->state_dir))
                        return 0;
                (void) snprintf(ds->ret, ds->size, "%s", word);
                return 1;
        }
        for (size_t i = 0; i < ELEMENTSOF(disk_options); i++)
                if (streq(word, disk_options[i]))
                        ds->option = disk_options[i];
        return 0;
}

int qemu_snapshot_writable_disk(const char *qemu_opts, char *const *argv, const char *state_dir, char *ret,
                                size_t size) {
        struct disk_scan ds = {.state_dir = state_dir, .ret = ret, .size = size};

        if (words_each(qemu_opts, disk_word, &ds) > 0)
                return 1;
        ds.option = NULL;
        for (size_t i = 0; argv && argv[i]; i++)
                if (disk_word(argv[i], &ds) > 0)
                        return 1;
        return 0;
}

static const char *const disk_why[_QEMU_SNAPSHOT_DISK_VERDICT_MAX] = {
        [QEMU_SNAPSHOT_DISK_OUTSIDE] = "it is outside the machine's state dir, and a snapshot carries only the "
                                       "disks in it (a later run could not have it as it was)",
        [QEMU_SNAPSHOT_DISK_PROTOCOL] = "it is not a plain file (a protocol or json: filename), which a snapshot "
                                        "cannot carry",
        [QEMU_SNAPSHOT_DISK_NOT_REGULAR] = "it is not a regular file (a block device?), which a snapshot cannot "
                                           "carry",
};

const char *qemu_snapshot_disk_why(enum qemu_snapshot_disk_verdict v) {
        return v >= 0 && v < _QEMU_SNAPSHOT_DISK_VERDICT_MAX && disk_why[v] ? disk_why[v] : "it can be carried";
}

bool qemu_snapshot_disk_rel_ok(const char *rel) {
        if (!rel || !*rel || rel[0] == '/' || strchr(rel, '\n'))
                return false;
        for (const char *p = rel; *p;) {
                size_t n = strcspn(p, "/");
                if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                p += n;
                if (*p == '/' && !*++p)
                        return false; /* a trailing slash: a directory */
        }
        return true;
}

/* @rel if @file is @dir/<rel> with a relative path a manifest may name. */
static const char *path_under(const char *file, const char *dir) {
        size_t n = dir ? strlen(dir) : 0;

        while (n > 1 && dir[n - 1] == '/')
                n--;
        if (n == 0 || strncmp(file, dir, n) != 0 || file[n] != '/')
                return NULL;
        return qemu_snapshot_disk_rel_ok(file + n + 1) ? file + n + 1 : NULL;
}

enum qemu_snapshot_disk_verdict qemu_snapshot_disk_rule(const char *file, bool regular, const char *state_dir,
                                                        const char *state_real, const char **ret_rel) {
        const char *base = strrchr(file, '/'), *rel;

        if (file[0] != '/')
                return QEMU_SNAPSHOT_DISK_PROTOCOL;
        if (streq(base, "/store.img"))
                return QEMU_SNAPSHOT_DISK_SKIPPED;
        rel = path_under(file, state_dir) ?: path_under(file, state_real);
        if (!rel)
                return QEMU_SNAPSHOT_DISK_OUTSIDE;
        if (!regular)
                return QEMU_SNAPSHOT_DISK_NOT_REGULAR;
        if (ret_rel)
                *ret_rel = rel;
        return QEMU_SNAPSHOT_DISK_CARRIED;
}

void qemu_snapshot_blocks_free(struct qemu_snapshot_block *b, size_t n) {
        for (size_t i = 0; b && i < n; i++) {
                free(b[i].device);
                free(b[i].file);
        }
        free(b);
}

int qemu_snapshot_writable_blocks(const char *reply, struct qemu_snapshot_block **ret, size_t *ret_n) {
        _cleanup_json_ json_object *o = reply ? json_tokener_parse(reply) : NULL;
        json_object *list, *dev, *ins, *ro, *file;
        struct qemu_snapshot_block *b = NULL;
        size_t n = 0;

        if (!o || !json_object_object_get_ex(o, "return", &list) || !json_object_is_type(list, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                json_object *e = json_object_array_get_idx(list, i);
                if (!json_object_object_get_ex(e, "inserted", &ins) || !json_object_object_get_ex(ins, "ro", &ro) ||
                    json_object_get_boolean(ro))
                        continue;
                if (!json_object_object_get_ex(ins, "file", &file) || !json_object_is_type(file, json_type_string))
                        goto bad;
                if (!json_object_object_get_ex(e, "device", &dev) || !*json_object_get_string(dev))
                        (void) (json_object_object_get_ex(ins, "node-name", &dev) ||
                                json_object_object_get_ex(e, "qdev", &dev));
                struct qemu_snapshot_block *v = realloc(b, (n + 1) * sizeof *b);
                if (!v)
                        goto oom;
                b = v;
                b[n].device = strdup(dev ? json_object_get_string(dev) : "?");
                b[n].file = strdup(json_object_get_string(file));
                n++;
                if (!b[n - 1].device || !b[n - 1].file)
                        goto oom;
        }
        *ret = b;
        *ret_n = n;
        return 0;
bad:
        qemu_snapshot_blocks_free(b, n);
        return -EBADMSG;
oom:
        qemu_snapshot_blocks_free(b, n);
        return -ENOMEM;
}

#define MANIFEST_HEADER "vigil boot disks 1\n"

void qemu_snapshot_disks_free(struct qemu_snapshot_disk *d, size_t n) {
        for (size_t i = 0; d && i < n; i++) {
                free(d[i].rel);
                free(d[i].saved);
        }
        free(d);
}

/* A file name beside vmstate: no slash, not hidden, not vmstate itself. */
static bool saved_name_ok(const char *name, size_t len) {
        return len > 0 && len < 256 && name[0] != '.' && !memchr(name, '/', len) && !memchr(name, ' ', len) &&
               !memchr(name, '\n', len) && !(len == strlen(QEMU_SNAPSHOT_STATE) && !strncmp(name, "vmstate", len));
}

int qemu_snapshot_manifest_format(const struct qemu_snapshot_disk *d, size_t n, char **ret) {
        struct text t = {};

        text_add(&t, MANIFEST_HEADER, strlen(MANIFEST_HEADER));
        for (size_t i = 0; i < n; i++) {
                if (!saved_name_ok(d[i].saved, strlen(d[i].saved)) || !qemu_snapshot_disk_rel_ok(d[i].rel)) {
                        free(t.buf);
                        return -EINVAL;
                }
                text_printf(&t, "%s %s\n", d[i].saved, d[i].rel);
        }
        if (t.oom) {
                free(t.buf);
                return -ENOMEM;
        }
        *ret = t.buf;
        return 0;
}

/* One line "<saved> <rel>" each, after the header. */
int qemu_snapshot_manifest_parse(const char *text, struct qemu_snapshot_disk **ret, size_t *ret_n) {
        struct qemu_snapshot_disk *d = NULL;
        size_t n = 0;
        int r = -EBADMSG;

        if (strncmp(text, MANIFEST_HEADER, strlen(MANIFEST_HEADER)) != 0)
                return -EBADMSG;
        for (const char *p = text + strlen(MANIFEST_HEADER); *p;) {
                const char *nl = strchr(p, '\n'), *sp = strchr(p, ' ');
                struct qemu_snapshot_disk *v;
                if (!nl || !sp || sp > nl || !saved_name_ok(p, (size_t) (sp - p)))
                        goto fail;
                v = realloc(d, (n + 1) * sizeof *d);
                if (!v) {
                        r = -ENOMEM;
                        goto fail;
                }
                d = v;
                d[n].saved = strndup(p, (size_t) (sp - p));
                d[n].rel = strndup(sp + 1, (size_t) (nl - sp - 1));
                n++;
                if (!d[n - 1].saved || !d[n - 1].rel) {
                        r = -ENOMEM;
                        goto fail;
                }
                if (!qemu_snapshot_disk_rel_ok(d[n - 1].rel))
                        goto fail;
                p = nl + 1;
        }
        *ret = d;
        *ret_n = n;
        return 0;
fail:
        qemu_snapshot_disks_free(d, n);
        return r;
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

/* A "disk <rel>" line per disk, after the text of @t. */
static int disk_lines_format(struct text *t, char *const *disks, char **ret) {
        for (size_t i = 0; disks && disks[i]; i++) {
                if (!qemu_snapshot_disk_rel_ok(disks[i])) {
                        free(t->buf);
                        return -EINVAL;
                }
                text_add(t, "disk ", 5);
                text_add(t, disks[i], strlen(disks[i]));
                text_add(t, "\n", 1);
        }
        if (t->oom) {
                free(t->buf);
                return -ENOMEM;
        }
        *ret = t->buf ?: strdup("");
        return *ret ? 0 : -ENOMEM;
}

/* Those lines back (@ret NULL if none). */
static int disk_lines_parse(const char *p, char ***ret) {
        _cleanup_strv_free_ char **disks = NULL;
        size_t n = 0;

        while (*p) {
                const char *e = strchr(p, '\n');
                char **v;
                if (!e || strncmp(p, "disk ", 5) != 0)
                        return -EBADMSG;
                v = realloc(disks, (n + 2) * sizeof *v);
                if (!v)
                        return -ENOMEM;
                disks = v;
                disks[n + 1] = NULL;
                disks[n] = strndup(p + 5, (size_t) (e - p - 5));
                if (!disks[n])
                        return -ENOMEM;
                if (!qemu_snapshot_disk_rel_ok(disks[n++]))
                        return -EBADMSG;
                p = e + 1;
        }
        *ret = TAKE_PTR(disks);
        return 0;
}

int qemu_snapshot_placed_format(char *const *disks, char **ret) {
        struct text t = {};

        return disk_lines_format(&t, disks, ret);
}

int qemu_snapshot_placed_parse(const char *text, char ***ret_disks) {
        return disk_lines_parse(text, ret_disks);
}

int qemu_snapshot_saving_format(const char *tmp, const char *path, char *const *disks, char **ret) {
        struct text t = {};

        if (tmp[0] != '/' || path[0] != '/' || strchr(tmp, '\n') || strchr(path, '\n'))
                return -EINVAL;
        text_printf(&t, "%s\n%s\n", tmp, path);
        return disk_lines_format(&t, disks, ret);
}

/* Two absolute paths, then a "disk <rel>" line per disk the save carries. */
int qemu_snapshot_saving_parse(const char *text, char **ret_tmp, char **ret_path, char ***ret_disks) {
        const char *nl = strchr(text, '\n'), *end;
        _cleanup_free_ char *tmp = NULL, *path = NULL;
        _cleanup_strv_free_ char **disks = NULL;
        int r;

        if (!nl || text[0] != '/' || nl[1] != '/')
                return -EBADMSG;
        end = strchr(nl + 1, '\n');
        if (!end)
                return -EBADMSG;
        r = disk_lines_parse(end + 1, &disks);
        if (r < 0)
                return r;
        tmp = strndup(text, nl - text);
        path = strndup(nl + 1, end - nl - 1);
        if (!tmp || !path)
                return -ENOMEM;
        *ret_tmp = TAKE_PTR(tmp);
        *ret_path = TAKE_PTR(path);
        *ret_disks = TAKE_PTR(disks);
        return 0;
}
