/* SPDX-License-Identifier: MIT */
/*
 * run-registry.c owns RUN_DIR/run.json: written by `vigil run` when its
 * directories exist and again when create_machine() adds a machine, read by
 * `vigil ps` and `vigil shell`. Finding runs needs no daemon and no socket:
 * the places a run directory can be are few ($XDG_RUNTIME_DIR, $TMPDIR,
 * /tmp, the same choice run-main.c makes, plus /run/user/UID, which is
 * $XDG_RUNTIME_DIR in the user's login sessions), and the file names its vigil
 * process by pid and start time, so a SIGKILLed run is told from a live one
 * exactly as run-sweep.c tells them apart.
 */
#include <dirent.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "errmsg.h"
#include "fs-util.h"
#include "macro.h"
#include "run-plan.h"
#include "run-registry.h"
#include "run-sweep.h"

#define RUN_REGISTRY_FILE_MAX (1024u * 1024u)

static void registry_json_putp(json_object **j) {
        if (*j)
                json_object_put(*j);
}

void run_registry_entry_done(struct run_registry_entry *e) {
        if (!e)
                return;
        free(e->run_id);
        free(e->run_dir);
        free(e->out_dir);
        free(e->script);
        for (size_t i = 0; i < e->n_machines; i++) {
                free(e->machines[i].name);
                free(e->machines[i].backend);
        }
        free(e->machines);
        *e = (struct run_registry_entry){};
}

void run_registry_entries_free(struct run_registry_entry *e, size_t n) {
        for (size_t i = 0; e && i < n; i++)
                run_registry_entry_done(&e[i]);
        free(e);
}

static bool registry_dup(char **dst, const char *s) {
        *dst = s ? strdup(s) : NULL;
        return !s || *dst;
}

int run_registry_entry_from_plan(const struct run_plan *p, const char *run_id, const char *run_dir,
                                 const char *out_dir, struct run_registry_entry *ret) {
        struct run_registry_entry e = {.pid = (int) getpid(), .start_time = run_sweep_start_time(getpid())};
        struct timespec ts;
        bool ok;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        e.started = (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
        ok = registry_dup(&e.run_id, run_id) && registry_dup(&e.run_dir, run_dir) &&
             registry_dup(&e.out_dir, out_dir) && registry_dup(&e.script, p->script) &&
             (e.machines = calloc(MAX(p->n_nodes, (size_t) 1), sizeof(*e.machines)));
        for (size_t i = 0; ok && i < p->n_nodes; i++) {
                e.n_machines++;
                ok = registry_dup(&e.machines[i].name, p->nodes[i].name) &&
                     registry_dup(&e.machines[i].backend, p->nodes[i].backend);
        }
        if (!ok) {
                run_registry_entry_done(&e);
                return -ENOMEM;
        }
        *ret = e;
        return 0;
}

static int registry_add(json_object *o, const char *key, json_object *v) {
        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* @s as a JSON string, or null (json-c's null is a NULL object, not an allocation). */
static int registry_add_string(json_object *o, const char *key, const char *s) {
        if (!s)
                return json_object_object_add(o, key, NULL) < 0 ? -ENOMEM : 0;
        return registry_add(o, key, json_object_new_string(s));
}

static int registry_to_json(const struct run_registry_entry *e, json_object **ret) {
        _cleanup_(registry_json_putp) json_object *j = json_object_new_object();
        json_object *machines = json_object_new_array();
        int r = j && machines ? 0 : -ENOMEM;

        if (r < 0) {
                json_object_put(machines);
                return r;
        }
        r = registry_add(j, "machines", machines);
        for (size_t i = 0; r >= 0 && i < e->n_machines; i++) {
                json_object *m = json_object_new_object();

                r = m ? 0 : -ENOMEM;
                if (r >= 0)
                        r = registry_add_string(m, "name", e->machines[i].name);
                if (r >= 0)
                        r = registry_add_string(m, "backend", e->machines[i].backend);
                if (r >= 0 && json_object_array_add(machines, m) < 0)
                        r = -ENOMEM;
                if (r < 0)
                        json_object_put(m);
        }
        if (r >= 0)
                r = registry_add_string(j, "run_id", e->run_id);
        if (r >= 0)
                r = registry_add(j, "pid", json_object_new_int(e->pid));
        if (r >= 0)
                r = registry_add(j, "start_time", json_object_new_uint64(e->start_time));
        if (r >= 0)
                r = registry_add(j, "started", json_object_new_double(e->started));
        if (r >= 0)
                r = registry_add_string(j, "run_dir", e->run_dir);
        if (r >= 0)
                r = registry_add_string(j, "out_dir", e->out_dir);
        if (r >= 0)
                r = registry_add_string(j, "script", e->script);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(j);
        return 0;
}

int run_registry_write(const struct run_registry_entry *e) {
        _cleanup_(registry_json_putp) json_object *j = NULL;
        char path[PATH_MAX], tmp[PATH_MAX];
        const char *text;
        _cleanup_fclose_ FILE *f = NULL;
        int r;

        r = registry_to_json(e, &j);
        if (r < 0)
                return r;
        text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        snprintf(path, sizeof(path), "%s/" RUN_REGISTRY_FILE, e->run_dir);
        snprintf(tmp, sizeof(tmp), "%s/." RUN_REGISTRY_FILE ".tmp", e->run_dir);
        f = fopen(tmp, "we");
        if (!f)
                return -errno;
        if (fputs(text, f) < 0 || fputc('\n', f) < 0 || fflush(f) != 0) {
                r = -errno;
                (void) unlink(tmp);
                return r;
        }
        if (rename(tmp, path) < 0) {
                r = -errno;
                (void) unlink(tmp);
                return r;
        }
        return 0;
}

static int registry_get_string(json_object *j, const char *key, bool required, char **ret) {
        json_object *v;

        if (!json_object_object_get_ex(j, key, &v) || json_object_is_type(v, json_type_null))
                return required ? -EINVAL : 0;
        if (!json_object_is_type(v, json_type_string))
                return -EINVAL;
        *ret = strdup(json_object_get_string(v));
        return *ret ? 0 : -ENOMEM;
}

int run_registry_parse(const char *json, struct run_registry_entry *ret) {
        _cleanup_(registry_json_putp) json_object *j = json_tokener_parse(json);
        struct run_registry_entry e = {};
        json_object *v, *machines;
        int r;

        if (!j || !json_object_is_type(j, json_type_object))
                return -EINVAL;
        r = registry_get_string(j, "run_id", true, &e.run_id);
        if (r >= 0)
                r = registry_get_string(j, "run_dir", true, &e.run_dir);
        if (r >= 0)
                r = registry_get_string(j, "out_dir", true, &e.out_dir);
        if (r >= 0)
                r = registry_get_string(j, "script", false, &e.script);
        if (r >= 0 && (!json_object_object_get_ex(j, "pid", &v) || !json_object_is_type(v, json_type_int) ||
                       json_object_get_int64(v) <= 0 || json_object_get_int64(v) > INT_MAX))
                r = -EINVAL;
        if (r >= 0)
                e.pid = (int) json_object_get_int64(v);
        if (r >= 0 && (!json_object_object_get_ex(j, "start_time", &v) || !json_object_is_type(v, json_type_int)))
                r = -EINVAL;
        if (r >= 0)
                e.start_time = json_object_get_uint64(v);
        if (r >= 0 && json_object_object_get_ex(j, "started", &v) &&
            (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
                e.started = json_object_get_double(v);
        if (r >= 0 &&
            (!json_object_object_get_ex(j, "machines", &machines) || !json_object_is_type(machines, json_type_array) ||
             json_object_array_length(machines) > RUN_NODES_MAX))
                r = -EINVAL;
        if (r >= 0) {
                size_t n = json_object_array_length(machines);

                e.machines = calloc(MAX(n, (size_t) 1), sizeof(*e.machines));
                r = e.machines ? 0 : -ENOMEM;
                for (size_t i = 0; r >= 0 && i < n; i++) {
                        json_object *m = json_object_array_get_idx(machines, i);

                        e.n_machines++;
                        r = json_object_is_type(m, json_type_object) ? 0 : -EINVAL;
                        if (r >= 0)
                                r = registry_get_string(m, "name", true, &e.machines[i].name);
                        if (r >= 0)
                                r = registry_get_string(m, "backend", true, &e.machines[i].backend);
                }
        }
        if (r < 0) {
                run_registry_entry_done(&e);
                return r;
        }
        *ret = e;
        return 0;
}

bool run_registry_alive(const struct run_registry_entry *e) {
        return e->pid > 0 && e->start_time > 0 && run_sweep_start_time(e->pid) == e->start_time;
}

/* vigil-<8 hex> (one run) or vigil-keep-<uid> (--keep-machine-state). */
static bool registry_dir_name(const char *name) {
        if (strncmp(name, "vigil-", 6) != 0)
                return false;
        name += 6;
        if (strncmp(name, "keep-", 5) == 0)
                return name[5] && strspn(name + 5, "0123456789") == strlen(name + 5);
        return strlen(name) == 8 && strspn(name, "0123456789abcdef") == 8;
}

static int registry_scan(const char *base, struct run_registry_entry **entries, size_t *n, size_t *size) {
        _cleanup_closedir_ DIR *d = opendir(base);
        struct dirent *e;

        while (d && (e = readdir(d))) {
                _cleanup_free_ char *text = NULL;
                struct run_registry_entry entry;
                char path[PATH_MAX];
                struct stat st;
                bool dup = false;

                if (!registry_dir_name(e->d_name))
                        continue;
                if ((size_t) snprintf(path, sizeof(path), "%s/%s/" RUN_REGISTRY_FILE, base, e->d_name) >= sizeof(path))
                        continue;
                path[strlen(path) - strlen("/" RUN_REGISTRY_FILE)] = 0;
                /* Another user's run is theirs to list; root sees everyone's. */
                if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode) || (geteuid() != 0 && st.st_uid != geteuid()))
                        continue;
                strcat(path, "/" RUN_REGISTRY_FILE); /* fits: measured above */
                if (read_file_max(path, RUN_REGISTRY_FILE_MAX, &text) < 0 || run_registry_parse(text, &entry) < 0)
                        continue;
                for (size_t i = 0; i < *n; i++)
                        dup = dup || streq((*entries)[i].run_id, entry.run_id);
                if (dup || !run_registry_alive(&entry)) {
                        run_registry_entry_done(&entry);
                        continue;
                }
                if (*n == *size) {
                        size_t grow = MAX(*size * 2, (size_t) 8);
                        struct run_registry_entry *m = reallocarray(*entries, grow, sizeof(**entries));
                        if (!m) {
                                run_registry_entry_done(&entry);
                                return -ENOMEM;
                        }
                        *entries = m;
                        *size = grow;
                }
                (*entries)[(*n)++] = entry;
        }
        return 0;
}

static int registry_cmp(const void *a, const void *b) {
        const struct run_registry_entry *x = a, *y = b;

        return x->started < y->started ? -1 : x->started > y->started ? 1 : strcmp(x->run_id, y->run_id);
}

int run_registry_list(struct run_registry_entry **ret, size_t *ret_n) {
        char user_runtime[64];
        const char *bases[] = {getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR"), "/tmp", user_runtime};
        char seen[ELEMENTSOF(bases)][PATH_MAX];
        struct run_registry_entry *entries = NULL;
        size_t n = 0, size = 0;
        int r = 0;

        /* $XDG_RUNTIME_DIR of this user's login sessions: their runs are found from cron or systemd-run too. */
        snprintf(user_runtime, sizeof(user_runtime), "/run/user/%u", (unsigned) geteuid());
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(bases); i++) {
                bool dup = false;

                if (!bases[i] || !*bases[i] || !realpath(bases[i], seen[i])) {
                        seen[i][0] = 0;
                        continue;
                }
                for (size_t k = 0; k < i; k++)
                        dup = dup || streq(seen[k], seen[i]);
                if (!dup)
                        r = registry_scan(seen[i], &entries, &n, &size);
        }
        if (r < 0) {
                run_registry_entries_free(entries, n);
                return r;
        }
        if (n > 1)
                qsort(entries, n, sizeof(*entries), registry_cmp);
        *ret = entries;
        *ret_n = n;
        return 0;
}

static bool registry_names(const struct run_registry_entry *e, const char *what, const char *what_real) {
        char real[PATH_MAX];
        size_t len = strlen(what);

        if (what_real && realpath(e->out_dir, real) && streq(real, what_real))
                return true;
        return len >= 4 && strspn(what, "0123456789abcdef") == len && strncmp(e->run_id, what, len) == 0;
}

int run_registry_find(const char *what, struct run_registry_entry *ret, char **ret_error) {
        struct run_registry_entry *entries = NULL;
        char real[PATH_MAX];
        const char *what_real = realpath(what, real) ? real : NULL;
        size_t n = 0, found = SIZE_MAX, matches = 0;
        int r;

        r = run_registry_list(&entries, &n);
        if (r < 0)
                return errmsg_invalid(ret_error, "cannot list runs: %s", strerror(-r)), r;
        for (size_t i = 0; i < n; i++)
                if (registry_names(&entries[i], what, what_real)) {
                        matches++;
                        found = i;
                }
        if (matches == 0) {
                run_registry_entries_free(entries, n);
                errmsg_invalid(ret_error,
                               "no running vigil run has the id or output directory '%s' (ids: 4 or more hex digits; "
                               "see vigil ps)",
                               what);
                return -ENOENT;
        }
        if (matches > 1) {
                run_registry_entries_free(entries, n);
                errmsg_invalid(ret_error, "'%s' names %zu running runs: give more of the run id (see vigil ps)", what,
                               matches);
                return -EEXIST;
        }
        *ret = entries[found];
        entries[found] = (struct run_registry_entry){};
        run_registry_entries_free(entries, n);
        return 0;
}
