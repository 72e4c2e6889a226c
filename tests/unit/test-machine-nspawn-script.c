/* SPDX-License-Identifier: MIT */
/*
 * test-machine-nspawn-script: the NixOS container start script's contract as
 * vigil reads it. Proves the PID line and the reference's boot lines are
 * recognised byte by byte whatever the read boundaries, that bad or
 * out-of-order lines are refused instead of trusted, that the container init
 * is nspawn's only child, and that the wrapper, environment and shell argvs
 * are exactly what docs/machine.md says. Why: a misread PID would aim nsenter
 * (with every capability) at the wrong process.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "nspawn-script.h"
#include "tap.h"

static int feed_str(struct nspawn_script_scan *s, const char *text) {
        return nspawn_script_feed(s, (const uint8_t *) text, strlen(text));
}

static void test_lines(void) {
        struct nspawn_script_scan s = {};

        CHECK(feed_str(&s, "nixos-nspawn(a): creating netns\n") == NSPAWN_SCRIPT_NONE && s.nspawn_pid == 0,
              "other lines are nothing");
        CHECK(feed_str(&s, "systemd-nspawn's PID is 4242\n") == NSPAWN_SCRIPT_PID && s.nspawn_pid == 4242,
              "the PID line gives the pid");
        CHECK(feed_str(&s, "Spawning container a on /tmp/x.\r\n") == NSPAWN_SCRIPT_NONE && !s.booted,
              "nspawn's own lines are nothing");
        CHECK(feed_str(&s, "\nWelcome to NixOS 26.05 (Yarara)!\r\n") == NSPAWN_SCRIPT_BOOTED && s.booted,
              "the reference's welcome line boots");
        CHECK(feed_str(&s, "systemd-nspawn's PID is 1\n") == NSPAWN_SCRIPT_NONE && s.nspawn_pid == 4242,
              "nothing changes after the boot");

        s = (struct nspawn_script_scan){};
        const char *text = "systemd-nspawn's PID is 77\nsystemd[1]: Startup finished in 310ms.\n";
        int last = NSPAWN_SCRIPT_NONE, r;
        for (size_t i = 0; text[i]; i++)
                if ((r = nspawn_script_feed(&s, (const uint8_t *) text + i, 1)) != NSPAWN_SCRIPT_NONE)
                        last = r;
        CHECK(last == NSPAWN_SCRIPT_BOOTED && s.nspawn_pid == 77, "byte by byte, \"Startup finished\" boots");

        s = (struct nspawn_script_scan){.nspawn_pid = 5};
        CHECK(feed_str(&s, "Welcome to Debian GNU/Linux 12 (bookworm)!\n") == NSPAWN_SCRIPT_BOOTED,
              "another OS's welcome line boots too (vigil's addition)");
        s = (struct nspawn_script_scan){.nspawn_pid = 5};
        CHECK(feed_str(&s, "  systemd[1]: Startup finished in 1s\n") == NSPAWN_SCRIPT_NONE,
              "\"Startup finished\" counts only at the start of a line, as in the reference");

        s = (struct nspawn_script_scan){};
        CHECK(feed_str(&s, "Welcome to NixOS!\n") == -EPROTO, "a boot line before the PID line is refused");
        static const char *const bad[] = {
                "systemd-nspawn's PID is \n",
                "systemd-nspawn's PID is 12x\n",
                "systemd-nspawn's PID is -3\n",
                "systemd-nspawn's PID is 0\n",
                "systemd-nspawn's PID is 99999999999999999999\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                s = (struct nspawn_script_scan){};
                CHECK(feed_str(&s, bad[i]) == -EBADMSG && s.nspawn_pid == 0, "bad PID line refused: %.*s",
                      (int) strlen(bad[i]) - 1, bad[i]);
        }

        /* A line longer than the buffer: its head still counts, its tail is dropped. */
        char longline[NSPAWN_SCRIPT_LINE_MAX * 3];
        memset(longline, 'x', sizeof longline);
        memcpy(longline, "Welcome to NixOS", 16);
        longline[sizeof longline - 1] = '\n';
        s = (struct nspawn_script_scan){.nspawn_pid = 9};
        CHECK(nspawn_script_feed(&s, (const uint8_t *) longline, sizeof longline) == NSPAWN_SCRIPT_BOOTED,
              "an overlong line is matched on its first %u bytes", NSPAWN_SCRIPT_LINE_MAX);
}

static void test_children(void) {
        pid_t pid = 0;

        CHECK(nspawn_script_parse_children("1234 ", &pid) == 0 && pid == 1234, "one child");
        CHECK(nspawn_script_parse_children("", &pid) == -ESRCH, "no child yet");
        CHECK(nspawn_script_parse_children("12 13 ", &pid) == -ENOTUNIQ, "two children refused");
        CHECK(nspawn_script_parse_children("12 x", &pid) == -EBADMSG, "garbage refused");
}

static void test_argvs(void) {
        _cleanup_strv_free_ char **env = NULL, **argv = NULL, **shell = NULL;
        struct nspawn_script_tap taps[] = {{"v2ce91n3", 1}, {"v2ce92n3", 2}};

        CHECK(nspawn_script_env("/tmp/r/vm-state-a", "/tmp/r/shared-xchg", &env) == 0 && strv_length(env) == 2 &&
                      streq(env[0], "RUN_NSPAWN_ROOT_DIR=/tmp/r/vm-state-a") &&
                      streq(env[1], "RUN_NSPAWN_SHARED_DIR=/tmp/r/shared-xchg"),
              "the environment is the reference's two variables, nothing else");

        CHECK(nspawn_script_argv("/nix/store/x/bin/run-a-nspawn", "/proc/7/ns/net", taps, 2, &argv) == 0,
              "wrapper argv");
        CHECK(argv && strv_length(argv) == 16 && streq(argv[0], "unshare") && streq(argv[1], "--net") &&
                      streq(argv[2], "--mount") && streq(argv[6], "/bin/sh") && streq(argv[7], "-c") &&
                      streq(argv[10], "/proc/7/ns/net") && streq(argv[11], "/nix/store/x/bin/run-a-nspawn") &&
                      streq(argv[12], "v2ce91n3") && streq(argv[13], "1") && streq(argv[14], "v2ce92n3") &&
                      streq(argv[15], "2"),
              "unshare, sh, host netns, script, TAP/VLAN pairs");
        CHECK(argv && strstr(argv[8], "master \"br$2\"") && strstr(argv[8], "mount -t sysfs") &&
                      strstr(argv[8], "exec \"$script\""),
              "the program bridges each TAP, mounts its own sysfs and execs the script");
        if (argv) {
                /* The fixed program must at least parse. */
                FILE *f = popen("sh -n", "w");
                int st = f ? (fputs(argv[8], f), pclose(f)) : -1;
                CHECK(st == 0, "sh -n accepts the wrapper program");
        }

        struct nspawn_script_tap bad[] = {{"has space", 1}};
        struct nspawn_script_tap toolong[] = {{"a23456789012345x", 1}};
        struct nspawn_script_tap badvlan[] = {{"ok", 0}};
        char **v = NULL;
        CHECK(nspawn_script_argv("/s", "/proc/7/ns/net", bad, 1, &v) == -EINVAL &&
                      nspawn_script_argv("/s", "/proc/7/ns/net", toolong, 1, &v) == -EINVAL &&
                      nspawn_script_argv("/s", "/proc/7/ns/net", badvlan, 1, &v) == -EINVAL &&
                      nspawn_script_argv("", "/proc/7/ns/net", NULL, 0, &v) == -EINVAL && !v,
              "bad TAP names, VLANs and an empty script are refused");

        CHECK(nspawn_script_shell_argv(4321, &shell) == 0 && strv_length(shell) == 12 && streq(shell[0], "nsenter") &&
                      streq(shell[2], "4321") && streq(shell[3], "--mount") && streq(shell[8], "--cgroup") &&
                      streq(shell[9], "/bin/sh") && strstr(shell[11], "Spawning backdoor root shell...") &&
                      strstr(shell[11], "/run/systemd/private") && strstr(shell[11], "bash --norc"),
              "the shell: nsenter into the init's namespaces, /bin/sh, the ready line, bash");
        if (shell) {
                FILE *f = popen("sh -n", "w");
                int st = f ? (fputs(shell[11], f), pclose(f)) : -1;
                CHECK(st == 0, "sh -n accepts the shell program");
        }
        CHECK(nspawn_script_shell_argv(0, &v) == -EINVAL, "no shell without an init");
}

int main(void) {
        test_lines();
        test_children();
        test_argvs();
        return tap_done();
}
