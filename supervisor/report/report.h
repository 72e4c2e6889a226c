/* SPDX-License-Identifier: MIT */
/*
 * report.h: report.html, the one-file picture of a run (report/report.c), and
 * the `vigil report` verb that regenerates it from an output directory.
 */
#pragma once

#include <stddef.h>

/* What goes into one report; everything a run of hours can grow is capped. */
struct report_limits {
        size_t commands_max;      /* command events kept: the first half and the last half */
        size_t events_max;        /* other timeline events kept, likewise */
        size_t console_bytes_max; /* console text of all machines together */
        size_t console_line_max;  /* a longer console line is cut */
        size_t images_max;        /* screenshots embedded inline */
        size_t image_bytes_max;   /* a larger screenshot is linked, not embedded */
};

#define REPORT_LIMITS_DEFAULT                                                                                         \
        ((struct report_limits){.commands_max = 20000,                                                                \
                                .events_max = 50000,                                                                  \
                                .console_bytes_max = 32u << 20,                                                       \
                                .console_line_max = 4096,                                                             \
                                .images_max = 32,                                                                     \
                                .image_bytes_max = 2u << 20})

/* Write @out_dir/report.html (atomically: a temporary file renamed over it)
 * from the files a run recorded there: timeline.jsonl, NAME-console.log,
 * *.pcap, *.xml, *.png. Returns 0 or a negative errno with *@ret_error set. */
int report_write(const char *out_dir, const struct report_limits *lim, char **ret_error);

/* In a nix build ($out set, @out_dir inside it): append the report, JUnit
 * files and logs to $out/nix-support/hydra-build-products, so Hydra links
 * them. 0 when there is nothing to do. */
int report_hydra_products(const char *out_dir);

/* `vigil report OUT_DIR`: the process exit code. */
int verb_report(int argc, char **argv);
