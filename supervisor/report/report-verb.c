/* SPDX-License-Identifier: MIT */
/*
 * report-verb.c owns `vigil report OUT_DIR`: regenerating report.html from
 * what a run left in its output directory (after a crash of vigil itself, or
 * by a newer vigil). Exit 0 when written, 2 when OUT_DIR is not a run's
 * output directory, 5 when it cannot be written.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "exit-status.h"
#include "macro.h"
#include "report.h"

static void report_usage(FILE *f) {
        fputs("Usage: vigil report OUT_DIR\n"
              "\n"
              "Write OUT_DIR/report.html from the files a `vigil run` recorded in OUT_DIR\n"
              "(timeline.jsonl, NAME-console.log, *.pcap, *.xml, *.png). The page is one\n"
              "self-contained file: it opens from a CI artifact or a nix build output.\n"
              "\n"
              "Options:\n"
              "  -h, --help   show this help and exit\n"
              "\n"
              "Exit status: 0 written, 2 OUT_DIR holds no timeline.jsonl, 5 cannot write.\n",
              f);
}

int verb_report(int argc, char **argv) {
        static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {}};
        _cleanup_free_ char *err = NULL;
        char path[4096];
        int c, r;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                if (c == 'h') {
                        report_usage(stdout);
                        return VIGIL_EXIT_PASS;
                }
                report_usage(stderr);
                return VIGIL_EXIT_USAGE;
        }
        if (argc - optind != 1) {
                fprintf(stderr, "vigil report: expected one OUT_DIR (see vigil report --help)\n");
                return VIGIL_EXIT_USAGE;
        }
        snprintf(path, sizeof(path), "%s/timeline.jsonl", argv[optind]);
        if (access(path, R_OK) < 0) {
                fprintf(stderr, "vigil report: %s is not a run's output directory: cannot read %s: %s\n", argv[optind],
                        path, strerror(errno));
                return VIGIL_EXIT_USAGE;
        }
        r = report_write(argv[optind], &REPORT_LIMITS_DEFAULT, &err);
        if (r < 0) {
                fprintf(stderr, "vigil report: %s\n", err ?: strerror(-r));
                return VIGIL_EXIT_INTERNAL;
        }
        printf("%s/report.html\n", argv[optind]);
        return VIGIL_EXIT_PASS;
}
