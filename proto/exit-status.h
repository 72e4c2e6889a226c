/* SPDX-License-Identifier: MIT */
/*
 * exit-status.h: the exit codes that cross process boundaries. Worker codes
 * tell the supervisor what to do next (docs/restart-semantics.md); vigil's own
 * codes tell the user how the run ended (README, docs/cli.md).
 */
#pragma once

enum worker_exit {
        WORKER_EXIT_OK = 0,         /* normal: transient children are not restarted */
        WORKER_EXIT_CRASH = 1,      /* abnormal: restart per strategy */
        WORKER_EXIT_RESTART = 75,   /* asks to be restarted, even if transient */
        WORKER_EXIT_PERMANENT = 76, /* permanent failure: never restart this child */
        WORKER_EXIT_PROTOCOL = 77,  /* supervisor sent something invalid: restart */
        WORKER_EXIT_CONFIG = 78,    /* bad configuration: never restart, fail the run */
};

enum vigil_exit {
        VIGIL_EXIT_PASS = 0,
        VIGIL_EXIT_TEST_FAILED = 1,
        VIGIL_EXIT_USAGE = 2,       /* bad command line or bad input (spec, script path) */
        VIGIL_EXIT_TIMEOUT = 3,     /* global timeout fired */
        VIGIL_EXIT_GAVE_UP = 4,     /* restart intensity exceeded */
        VIGIL_EXIT_INTERNAL = 5,    /* vigil's own fault */
        VIGIL_EXIT_INTERRUPTED = 6, /* SIGINT/SIGTERM/SIGHUP received */
};
