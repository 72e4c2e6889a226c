/* SPDX-License-Identifier: MIT */
/*
 * run-ps.c owns `vigil ps [--json] [RUN]`: the live runs of this user (all
 * runs for root) with their machines, found through the registry
 * (run-registry.c), each machine's state read from the run's own
 * timeline.jsonl through the same fold as the live progress (run-status.c).
 * It gives what `vigil shell RUN_ID MACHINE` needs: the run id, the output
 * directory, the machine names and their backends.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <time.h>

#include "exit-status.h"
#include "macro.h"
#include "run-ps.h"
#include "run-registry.h"
#include "run-status.h"

#define PS_TIMELINE_LINE_MAX (64u * 1024u)
#define PS_KV_MAX            32

static void ps_usage(FILE *f) {
        fputs("Usage: vigil ps [--json] [RUN]\n"
              "\n"
              "List the running `vigil run`s and their machines: run id, pid of vigil, age,\n"
              "current subtest, output directory, and per machine its backend and state\n"
              "(starting, standby, booting, ready, down). RUN (a run id prefix of 4 or\n"
              "more hex digits, or an output directory) shows that run only.\n"
              "\n"
              "Options:\n"
              "      --json   one JSON object {\"runs\": [...]} instead of the table\n"
              "  -h, --help   show this help and exit\n"
              "\n"
              "Exit status: 0 listed (also when nothing runs), 2 bad option or no such RUN,\n"
              "5 the runs could not be listed.\n",
              f);
}

static void ps_json_putp(json_object **j) {
        if (*j)
                json_object_put(*j);
}

/* One timeline line as the event hook saw it: name, child, kind, the other
 * keys as strings, message. */
static void ps_feed_line(struct run_status *st, const char *line) {
        _cleanup_(ps_json_putp) json_object *o = json_tokener_parse(line);
        const char *kv[2 * PS_KV_MAX + 1] = {}, *name = NULL, *child = NULL, *kind = NULL, *message = NULL;
        size_t n = 0;

        if (!o || !json_object_is_type(o, json_type_object))
                return;
        json_object_object_foreach(o, key, v) {
                const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;

                if (streq(key, "event"))
                        name = s;
                else if (streq(key, "child"))
                        child = s;
                else if (streq(key, "kind"))
                        kind = s;
                else if (streq(key, "message"))
                        message = s;
                else if (n + 2 < ELEMENTSOF(kv) && !streq(key, "t") && !streq(key, "ts")) {
                        kv[n++] = key;
                        kv[n++] = json_object_get_string(v); /* numbers and booleans as their JSON text */
                }
        }
        (void) run_status_feed(st, name, child, kind, kv, message);
}

static void ps_status(const struct run_registry_entry *e, struct run_status *st) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = malloc(PS_TIMELINE_LINE_MAX);
        char path[4200];

        *st = (struct run_status){};
        snprintf(path, sizeof(path), "%s/timeline.jsonl", e->out_dir);
        f = fopen(path, "re");
        while (f && line && fgets(line, PS_TIMELINE_LINE_MAX, f)) {
                if (!strchr(line, '\n') && !feof(f)) { /* a line too long to be a lifecycle event: skip it */
                        int c;
                        while ((c = fgetc(f)) != EOF && c != '\n')
                                ;
                        continue;
                }
                ps_feed_line(st, line);
        }
}

static const char *ps_machine_state(const struct run_status *st, const char *name) {
        const struct run_status_machine *m = run_status_machine(st, name);

        return m ? run_machine_state_to_string(m->state) : "pending";
}

static double ps_now(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* "42s", "3m05s", "2h07m" */
static void ps_age(double seconds, char *buf, size_t size) {
        unsigned long long s = seconds > 0 ? (unsigned long long) seconds : 0;

        if (s < 60)
                snprintf(buf, size, "%llus", s);
        else if (s < 3600)
                snprintf(buf, size, "%llum%02llus", s / 60, s % 60);
        else
                snprintf(buf, size, "%lluh%02llum", s / 3600, s / 60 % 60);
}

static void ps_table(const struct run_registry_entry *e, size_t n) {
        double now = ps_now();

        printf("%-8s  %-8s  %-7s  %-24s  %s\n", "RUN", "PID", "AGE", "SUBTEST", "OUTPUT");
        for (size_t i = 0; i < n; i++) {
                struct run_status st;
                char age[32];

                ps_status(&e[i], &st);
                ps_age(now - e[i].started, age, sizeof(age));
                printf("%-8.8s  %-8d  %-7s  %-24.24s  %s\n", e[i].run_id, e[i].pid, age,
                       st.subtest[0] ? st.subtest : "-", e[i].out_dir);
                for (size_t k = 0; k < e[i].n_machines; k++)
                        printf("  %-16s  %-8s  %s\n", e[i].machines[k].name, e[i].machines[k].backend,
                               ps_machine_state(&st, e[i].machines[k].name));
        }
}

static int ps_add(json_object *o, const char *key, json_object *v) {
        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* @s as a JSON string, or null (json-c's null is a NULL object, not an allocation). */
static int ps_add_string(json_object *o, const char *key, const char *s) {
        if (!s)
                return json_object_object_add(o, key, NULL) < 0 ? -ENOMEM : 0;
        return ps_add(o, key, json_object_new_string(s));
}

static int ps_run_json(const struct run_registry_entry *e, double now, json_object **ret) {
        _cleanup_(ps_json_putp) json_object *o = json_object_new_object();
        json_object *machines = json_object_new_array();
        struct run_status st;
        int r = o && machines ? 0 : -ENOMEM;

        if (r < 0) {
                json_object_put(machines);
                return r;
        }
        ps_status(e, &st);
        r = ps_add(o, "run_id", json_object_new_string(e->run_id));
        if (r >= 0)
                r = ps_add(o, "pid", json_object_new_int(e->pid));
        if (r >= 0)
                r = ps_add(o, "started", json_object_new_double(e->started));
        if (r >= 0)
                r = ps_add(o, "age_s", json_object_new_int64((int64_t) (now - e->started)));
        if (r >= 0)
                r = ps_add(o, "run_dir", json_object_new_string(e->run_dir));
        if (r >= 0)
                r = ps_add(o, "out_dir", json_object_new_string(e->out_dir));
        if (r >= 0)
                r = ps_add_string(o, "script", e->script);
        if (r >= 0)
                r = ps_add_string(o, "subtest", st.subtest[0] ? st.subtest : NULL);
        if (r >= 0)
                r = ps_add(o, "restarts", json_object_new_int((int) st.restarts));
        if (r >= 0)
                r = ps_add(o, "machines", machines);
        else
                json_object_put(machines);
        for (size_t k = 0; r >= 0 && k < e->n_machines; k++) {
                json_object *m = json_object_new_object();

                r = m ? 0 : -ENOMEM;
                if (r >= 0)
                        r = ps_add(m, "name", json_object_new_string(e->machines[k].name));
                if (r >= 0)
                        r = ps_add(m, "backend", json_object_new_string(e->machines[k].backend));
                if (r >= 0)
                        r = ps_add(m, "state", json_object_new_string(ps_machine_state(&st, e->machines[k].name)));
                if (r >= 0 && json_object_array_add(machines, m) < 0)
                        r = -ENOMEM;
                if (r < 0)
                        json_object_put(m);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static int ps_json(const struct run_registry_entry *e, size_t n) {
        _cleanup_(ps_json_putp) json_object *j = json_object_new_object();
        json_object *runs = json_object_new_array();
        double now = ps_now();
        int r = j && runs ? ps_add(j, "runs", runs) : -ENOMEM;

        if (!j)
                json_object_put(runs);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                json_object *o = NULL;

                r = ps_run_json(&e[i], now, &o);
                if (r >= 0 && json_object_array_add(runs, o) < 0) {
                        json_object_put(o);
                        r = -ENOMEM;
                }
        }
        if (r < 0)
                return r;
        puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        return 0;
}

int run_ps_main(int argc, char **argv) {
        enum { ARG_JSON = 0x100 };
        static const struct option opts[] = {
                {"json", no_argument, NULL, ARG_JSON},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        struct run_registry_entry *entries = NULL;
        _cleanup_free_ char *err = NULL;
        size_t n = 0;
        bool json = false;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                if (c == 'h') {
                        ps_usage(stdout);
                        return VIGIL_EXIT_PASS;
                }
                if (c != ARG_JSON) {
                        ps_usage(stderr);
                        return VIGIL_EXIT_USAGE;
                }
                json = true;
        }
        if (argc - optind > 1) {
                fprintf(stderr, "vigil ps: expected at most one RUN (see vigil ps --help)\n");
                return VIGIL_EXIT_USAGE;
        }
        if (optind < argc) {
                entries = calloc(1, sizeof(*entries));
                if (!entries)
                        return VIGIL_EXIT_INTERNAL;
                r = run_registry_find(argv[optind], entries, &err);
                if (r < 0) {
                        free(entries);
                        fprintf(stderr, "vigil ps: %s\n", err ?: strerror(-r));
                        return r == -ENOENT || r == -EEXIST ? VIGIL_EXIT_USAGE : VIGIL_EXIT_INTERNAL;
                }
                n = 1;
        } else {
                r = run_registry_list(&entries, &n);
                if (r < 0) {
                        fprintf(stderr, "vigil ps: cannot list runs: %s\n", strerror(-r));
                        return VIGIL_EXIT_INTERNAL;
                }
        }
        r = 0;
        if (json)
                r = ps_json(entries, n);
        else
                ps_table(entries, n);
        run_registry_entries_free(entries, n);
        if (r < 0) {
                fprintf(stderr, "vigil ps: %s\n", strerror(-r));
                return VIGIL_EXIT_INTERNAL;
        }
        return VIGIL_EXIT_PASS;
}
