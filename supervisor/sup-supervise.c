/* SPDX-License-Identifier: MIT */
/*
 * sup-supervise.c owns the `vigil supervise SPEC.json` verb: a supervision
 * tree described directly in JSON (strategy, intensity, child specs), run
 * until it ends. It is the supervisor without a test around it: the demo, and
 * what the supervisor's own integration tests and benchmark drive.
 */
#include <getopt.h>

#include "defaults.h"
#include "exit-status.h"
#include "fs-util.h"
#include "sup.h"
#include "sup-spec.h"
#include "sup-verbs.h"

static void supervise_help(FILE *f) {
        fprintf(f, "Usage: vigil supervise SPEC.json [OPTIONS]\n"
                   "\n"
                   "Run a supervision tree described in JSON until it ends.\n"
                   "\n"
                   "  -o, --output DIR          write DIR/timeline.jsonl (lifecycle events, one JSON per line)\n"
                   "      --global-timeout S    tear everything down after S seconds (default " DEFAULT_TEXT(
                           DEFAULT_GLOBAL_TIMEOUT_S) ", 0: none)\n"
                                                     "      --log-target T        auto, journal or stderr (default "
                                                     "auto)\n"
                                                     "      --run-id ID           run id (VIGIL_RUN=ID in every "
                                                     "process's environment)\n"
                                                     "      --no-pidns            do not run the tree in its own PID "
                                                     "namespace\n"
                                                     "      --heartbeat S         print a \"still running\" line on "
                                                     "stderr every S seconds\n"
                                                     "  -h, --help\n"
                                                     "\n"
                                                     "SPEC.json: {\"strategy\": \"one_for_one\", \"intensity\": "
                                                     "{\"max_restarts\": 1, \"max_seconds\": "
                                                     "5},\n"
                                                     "            \"children\": [{\"id\": \"a\", \"kind\": \"test\", "
                                                     "\"restart\": \"permanent\",\n"
                                                     "                          \"shutdown\": 2000, \"args\": [...], "
                                                     "\"config\": {...}}]}\n"
                                                     "Exit: 0 ended, 2 bad input, 3 global timeout, 4 gave up "
                                                     "(restart intensity), 5 internal error,\n"
                                                     "      6 interrupted.\n");
}

static int parse_log_target(const char *s, enum log_target *ret) {
        static const char *const names[] = {
                [LOG_TARGET_AUTO] = "auto", [LOG_TARGET_JOURNAL] = "journal", [LOG_TARGET_STDERR] = "stderr"};
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(names[i], s)) {
                        *ret = (enum log_target) i;
                        return 0;
                }
        return -EINVAL;
}

int verb_supervise(int argc, char **argv) {
        enum { ARG_GLOBAL_TIMEOUT = 0x100, ARG_LOG_TARGET, ARG_RUN_ID, ARG_NO_PIDNS, ARG_HEARTBEAT };
        static const struct option options[] = {
                {"output", required_argument, NULL, 'o'},
                {"global-timeout", required_argument, NULL, ARG_GLOBAL_TIMEOUT},
                {"log-target", required_argument, NULL, ARG_LOG_TARGET},
                {"run-id", required_argument, NULL, ARG_RUN_ID},
                {"no-pidns", no_argument, NULL, ARG_NO_PIDNS},
                {"heartbeat", required_argument, NULL, ARG_HEARTBEAT},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        struct sup_options o = {.global_timeout_usec = DEFAULT_GLOBAL_TIMEOUT_S * USEC_PER_SEC, .notify_fd = -1};
        _cleanup_(sup_freep) struct sup *s = NULL;
        _cleanup_free_ char *text = NULL, *err = NULL;
        struct sup_spec spec;
        bool pidns = true;
        char *end;
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "o:h", options, NULL)) >= 0)
                switch (c) {
                case 'o':
                        o.outdir = optarg;
                        break;
                case ARG_GLOBAL_TIMEOUT: {
                        errno = 0;
                        double secs = strtod(optarg, &end);
                        if (errno || *end || secs < 0 || secs > 1e7) {
                                fprintf(stderr, "vigil supervise: --global-timeout: expected seconds, got '%s'\n",
                                        optarg);
                                return VIGIL_EXIT_USAGE;
                        }
                        o.global_timeout_usec = (uint64_t) (secs * USEC_PER_SEC);
                        break;
                }
                case ARG_LOG_TARGET:
                        if (parse_log_target(optarg, &o.log_target) < 0) {
                                fprintf(stderr, "vigil supervise: --log-target: expected auto, journal or stderr\n");
                                return VIGIL_EXIT_USAGE;
                        }
                        break;
                case ARG_RUN_ID:
                        if (!child_id_valid(optarg)) {
                                fprintf(stderr, "vigil supervise: --run-id: 1-64 characters of [A-Za-z0-9_.-]\n");
                                return VIGIL_EXIT_USAGE;
                        }
                        o.run_id = optarg;
                        break;
                case ARG_NO_PIDNS:
                        pidns = false;
                        break;
                case ARG_HEARTBEAT: {
                        errno = 0;
                        double secs = strtod(optarg, &end);
                        if (errno || *end || secs <= 0 || secs > 1e6) {
                                fprintf(stderr, "vigil supervise: --heartbeat: expected seconds, got '%s'\n", optarg);
                                return VIGIL_EXIT_USAGE;
                        }
                        o.heartbeat_usec = (uint64_t) (secs * USEC_PER_SEC);
                        break;
                }
                case 'h':
                        supervise_help(stdout);
                        return VIGIL_EXIT_PASS;
                default:
                        supervise_help(stderr);
                        return VIGIL_EXIT_USAGE;
                }
        if (optind + 1 != argc) {
                fprintf(stderr, "vigil supervise: expected exactly one SPEC.json (see --help)\n");
                return VIGIL_EXIT_USAGE;
        }
        const char *path = argv[optind];

        log_open("vigil", o.log_target);
        r = read_file_max(path, 16u * 1024 * 1024, &text);
        if (r < 0) {
                fprintf(stderr, "vigil supervise: cannot read %s: %s\n", path, strerror(-r));
                return VIGIL_EXIT_USAGE;
        }
        r = sup_spec_parse(text, &spec, &err);
        if (r < 0) {
                fprintf(stderr, "vigil supervise: %s: %s\n", path, err ?: strerror(-r));
                return VIGIL_EXIT_USAGE;
        }

        /* Before any event loop or thread exists: the namespace's PID 1 forks here. */
        r = sup_pidns_enter(pidns, &o.notify_fd);
        if (r < 0) {
                sup_spec_done(&spec);
                return VIGIL_EXIT_INTERNAL;
        }

        r = sup_new(&o, &s);
        if (r < 0) {
                sup_spec_done(&spec);
                log_error_errno(r, "Cannot create the supervisor");
                return VIGIL_EXIT_INTERNAL;
        }
        free(err);
        err = NULL;
        r = sup_tree_add_spec(s, &spec, &err);
        sup_spec_done(&spec);
        if (r < 0) {
                fprintf(stderr, "vigil supervise: %s: %s\n", path, err ?: strerror(-r));
                return VIGIL_EXIT_USAGE;
        }
        r = sup_run(s);
        return r < 0 ? VIGIL_EXIT_INTERNAL : r;
}
