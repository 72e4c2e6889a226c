/* SPDX-License-Identifier: MIT */
/*
 * vigil-main.c: the vigil executable's entry point. It opens the log and hands
 * argv to the verb named by argv[1]; each verb lives in its own file: `run`
 * and `ps` in this room (run-main.c, run-ps.c), `supervise` in the supervisor's, `report` in
 * report/.
 */
#include "config.h"
#include "exit-status.h"
#include "log.h"
#include "report.h"
#include "run-main.h"
#include "run-ps.h"
#include "sup-verbs.h"
#include "vigil-shell.h"

struct verb {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *help;
};

static const struct verb verbs[] = {
        {"run", run_main, "run a test script against machines (vigil run SCRIPT --node NAME ...)"},
        {"ps", run_ps_main, "list the running runs and their machines"},
        {"supervise", verb_supervise, "run a supervision tree described in JSON"},
        {"report", verb_report, "write OUT_DIR/report.html from a run's recorded files"},
        {"shell", vigil_shell_main, "a root shell in a machine of a running run (vigil shell RUN_ID|OUT_DIR MACHINE)"},
};

static void help(FILE *f) {
        fprintf(f, "Usage: vigil VERB [OPTIONS...]\n\nVerbs:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                fprintf(f, "  %-12s %s\n", verbs[i].name, verbs[i].help);
        fprintf(f,
                "\nvigil VERB --help for a verb's options. Named nixos-test-driver, or with an option first\n"
                "(vigil --config FILE), vigil speaks the NixOS test driver's CLI (vigil --config x --help).\n"
                "vigil %s\n",
                VIGIL_VERSION);
}

/* The reference driver's front door. nix reaches vigil through wrappers that
 * rename argv[0] (wrapProgram's `.nixos-test-driver-wrapped`) and put
 * `--config FILE` first, so the name is matched loosely and an option in
 * verb position means the reference CLI too. */
static bool front_door(int argc, char **argv) {
        const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

        if (strstr(base, "nixos-test-driver"))
                return true;
        return argc > 1 && argv[1][0] == '-' && !streq(argv[1], "--help") && !streq(argv[1], "-h") &&
               !streq(argv[1], "--version");
}

int main(int argc, char **argv) {
        log_open("vigil", LOG_TARGET_AUTO);
        if (front_door(argc, argv))
                return run_main(argc, argv);
        if (argc < 2) {
                help(stderr);
                return VIGIL_EXIT_USAGE;
        }
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
                help(stdout);
                return VIGIL_EXIT_PASS;
        }
        if (streq(argv[1], "--version")) {
                printf("vigil %s\n", VIGIL_VERSION);
                return VIGIL_EXIT_PASS;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(argv[1], verbs[i].name))
                        return verbs[i].run(argc - 1, argv + 1);
        fprintf(stderr, "vigil: unknown verb '%s' (see vigil --help)\n", argv[1]);
        return VIGIL_EXIT_USAGE;
}
