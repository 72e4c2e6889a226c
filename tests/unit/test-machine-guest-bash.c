/* SPDX-License-Identifier: MIT */
/*
 * test-machine-guest-bash: the fast framing's lines run in a real bash (the
 * host's, as the nspawn backdoor runs it: no tty, no job control) and its
 * replies read by the real parser. Statuses, output bytes and the timeout
 * stand-in must be what the reference framing gives, and the status must be
 * right every time: 2000 quick commands in a row, where the process
 * substitution this framing used before lost ~1 status in 1000 (bash reaped
 * the substitution before recording it, and `wait` said -1).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest-proto.h"
#include "macro.h"
#include "tap.h"

#define STRESS_COMMANDS 2000

struct shell {
        pid_t pid;
        int in, out;
        bool defined;
        struct guest_proto gp;
        uint8_t buf[65536];
        size_t have, off;
};

static int shell_start(struct shell *sh) {
        int in[2], out[2];

        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
                return -errno;
        sh->pid = fork();
        if (sh->pid < 0)
                return -errno;
        if (sh->pid == 0) {
                (void) dup2(in[0], 0);
                (void) dup2(out[1], 1);
                (void) freopen("/dev/null", "w", stderr);
                execlp("bash", "bash", "--norc", (char *) NULL);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        sh->in = in[1];
        sh->out = out[0];
        guest_proto_init(&sh->gp, 0);
        return 0;
}

static void shell_stop(struct shell *sh) {
        close(sh->in);
        close(sh->out);
        (void) kill(sh->pid, SIGKILL);
        (void) waitpid(sh->pid, NULL, 0);
}

/* Feed the parser until it says something; -EIO on EOF, -EPROTO on an error. */
static enum guest_event shell_next(struct shell *sh) {
        for (;;) {
                if (sh->off < sh->have) {
                        size_t used = 0;
                        enum guest_event ev = guest_proto_feed(&sh->gp, sh->buf + sh->off, sh->have - sh->off, &used);
                        sh->off += used;
                        if (ev != GUEST_EVENT_NONE)
                                return ev;
                        continue;
                }
                ssize_t n = read(sh->out, sh->buf, sizeof sh->buf);
                if (n <= 0)
                        return _GUEST_EVENT_MAX;
                sh->have = (size_t) n;
                sh->off = 0;
        }
}

/* One command through the fast framing; the status, or INT32_MIN when the
 * exchange itself failed. @ret_out gets the output (caller frees). */
static int shell_run(struct shell *sh, const char *command, int64_t timeout_s, char **ret_out, size_t *ret_len) {
        _cleanup_free_ char *line = NULL;
        uint8_t *out;
        size_t len;

        if (guest_build_fast_call(command, timeout_s, !sh->defined, &line) < 0)
                return INT32_MIN;
        sh->defined = true;
        if (write(sh->in, line, strlen(line)) != (ssize_t) strlen(line))
                return INT32_MIN;
        guest_proto_expect_output_fast(&sh->gp);
        if (shell_next(sh) != GUEST_EVENT_OUTPUT)
                return INT32_MIN;
        out = guest_proto_take_output(&sh->gp, &len);
        guest_proto_expect_status(&sh->gp);
        if (shell_next(sh) != GUEST_EVENT_STATUS) {
                free(out);
                return INT32_MIN;
        }
        if (ret_out) {
                *ret_out = (char *) out;
                *ret_len = len;
        } else
                free(out);
        return guest_proto_status(&sh->gp);
}

static double now_s(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void test_semantics(struct shell *sh) {
        static const struct {
                const char *command;
                int64_t timeout_s;
                int status;
                const char *out; /* NULL: not compared */
                size_t out_len;
                const char *what;
        } cases[] = {
                {"echo ok", -1, 0, "ok\n", 3, "output and status"},
                {"exit 3", -1, 3, "", 0, "an exit status"},
                {"false; echo unreachable", -1, 1, "", 0, "set -e"},
                {"true | false", -1, 1, "", 0, "set -o pipefail"},
                {"printf 'a\\0b'", -1, 0, "a\0b", 3, "a NUL byte"},
                {"[ -p /dev/stdout ] && echo pipe", -1, 0, "pipe\n", 5, "stdout is a pipe"},
                {"echo \"$0 $# $BASH_SUBSHELL\"", -1, 0, "bash 0 0\n", 9, "$0, no arguments, not a subshell"},
                {"declare -F __vigil_r __vigil_e __vigil_p || echo hidden", -1, 0, "hidden\n", 7,
                 "the reader is hidden"},
                {"echo ${FUNCNAME[0]-none}; local x=1 || echo nolocal", -1, 0, "none\nnolocal\n", 13,
                 "not in a function (the prologue is one), as in `bash -c`"},
                {"echo \"$SHLVL\" >/dev/null; set -o | grep -c 'errexit.*on'", -1, 0, "1\n", 2,
                 "the prologue's options hold in the command"},
                {"a=1; echo x | while read -r l; do a=2; done; echo $a", -1, 0, "1\n", 2,
                 "no lastpipe in the command, as in `bash -c`"},
                {"echo in-time", 5, 0, "in-time\n", 8, "a timeout that does not fire"},
                {"sleep 5", 1, 124, "", 0, "a timeout that fires: 124"},
                {"trap '' TERM; sleep 2; echo survived", 1, 124, "survived\n", 9,
                 "a command that ignores TERM runs on, and still says 124"},
                {"echo early; exec >&-; sleep 3", 1, 124, "early\n", 6,
                 "a timeout fires for a command that closed its stdout"},
                {"sleep 2 & echo bg", 1, 0, "bg\n", 3, "a background job holding stdout outlives the timeout: 0"},
                {"echo ${!__vigil*}", -1, 0, "\n", 1, "no variable left by the timed commands before"},
                {"sleep 1 >/dev/null & echo detached", -1, 0, "detached\n", 9,
                 "a background job not holding stdout is left running"},
                {"head -c 10000 /dev/zero | tr '\\0' x | wc -c", -1, 0, "10000\n", 6, "a pipeline inside"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *out = NULL;
                size_t len = 0;
                double t = now_s();
                int status = shell_run(sh, cases[i].command, cases[i].timeout_s, &out, &len);

                CHECK(status == cases[i].status &&
                              (!cases[i].out || (len == cases[i].out_len && memcmp(out, cases[i].out, len) == 0)),
                      "%s: `%s` -> %d (%.2f s)", cases[i].what, cases[i].command, status, now_s() - t);
        }
}

static void test_big_output(struct shell *sh) {
        _cleanup_free_ char *out = NULL;
        size_t len = 0, bad = 0;
        int status = shell_run(sh, "head -c 300000 /dev/zero | tr '\\0' q", 10, &out, &len);

        for (size_t i = 0; out && i < len; i++)
                bad += out[i] != 'q';
        CHECK(status == 0 && len == 300000 && bad == 0, "300 KB through the raw chunk and base64: %zu bytes", len);
}

static void test_stress(struct shell *sh) {
        unsigned wrong = 0, lost = 0;
        int first_bad = 0;
        double t = now_s();

        for (unsigned i = 0; i < STRESS_COMMANDS; i++) {
                _cleanup_free_ char *out = NULL;
                size_t len = 0;
                int status = shell_run(sh, i % 2 ? "echo ok" : "true", -1, &out, &len);

                if (status == INT32_MIN) {
                        lost++;
                        break;
                }
                if (status != 0 || len != (i % 2 ? 3u : 0u)) {
                        if (!wrong)
                                first_bad = status;
                        wrong++;
                }
        }
        CHECK(wrong == 0 && lost == 0, "%u quick commands: every status 0 (%u wrong, first %d; %.2f ms each)",
              STRESS_COMMANDS, wrong, first_bad, (now_s() - t) * 1000 / STRESS_COMMANDS);
}

int main(void) {
        struct shell sh = {};

        if (access("/bin/bash", X_OK) < 0 && access("/usr/bin/bash", X_OK) < 0 &&
            system("command -v bash >/dev/null")) {
                printf("1..0 # SKIP no bash on this host\n");
                return 77;
        }
        (void) signal(SIGPIPE, SIG_IGN);
        CHECK(shell_start(&sh) == 0, "bash --norc starts");
        test_semantics(&sh);
        test_big_output(&sh);
        test_stress(&sh);
        shell_stop(&sh);
        return tap_done();
}
