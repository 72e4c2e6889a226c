/* SPDX-License-Identifier: MIT */
/*
 * script-main.c: vigil-script, the worker that runs the test script. It owns
 * the start-up handshake (HELLO -> CONFIG -> READY on fd 3), finding and
 * starting the embedded Python, and the verdict: MSG_S_RESULT {exit_code,
 * message} is sent just before the process exits with that code (0 pass,
 * 1 failure, 78 bad configuration). Even a segfault inside Python or a C
 * extension still reports a verdict, from a frame encoded in advance.
 *
 * The process leaves with _exit() after the verdict: a script thread stuck
 * in a guest command must not keep the run alive (the supervisor tears the
 * machines down once it has the verdict).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "exit-status.h"
#include "fd-util.h"
#include "log.h"
#include "macro.h"
#include "peer.h"
#include "script-channel.h"
#include "script-paths.h"
#include "script-python.h"

#define SCRIPT_FD 3

/* Verdict frames for fatal signals, encoded before anything can crash:
 * the handler may only call async-signal-safe functions. */
static struct crash_frame {
        int sig;
        uint8_t *buf;
        size_t len;
} crash_frames[] = {
        {SIGSEGV}, {SIGBUS}, {SIGFPE}, {SIGILL}, {SIGABRT},
};

static void crash_handler(int sig) {
        for (size_t i = 0; i < ELEMENTSOF(crash_frames); i++)
                if (crash_frames[i].sig == sig && crash_frames[i].buf)
                        (void) send(SCRIPT_FD, crash_frames[i].buf, crash_frames[i].len, MSG_NOSIGNAL | MSG_DONTWAIT);
        /* SA_RESETHAND restored the default action: die of the same signal. */
        (void) raise(sig);
}

static void crash_handlers_install(void) {
        for (size_t i = 0; i < ELEMENTSOF(crash_frames); i++) {
                struct crash_frame *c = &crash_frames[i];
                char msg[96];
                struct sigaction sa = {.sa_handler = crash_handler, .sa_flags = SA_RESETHAND | SA_NODEFER};

                snprintf(msg, sizeof(msg), "the script worker crashed (signal %d, %s)", c->sig, sigabbrev_np(c->sig));
                if (frame_encode(MSG_S_RESULT, 0, &(struct msg_s_result){.exit_code = 1, .message = msg}, &c->buf,
                                 &c->len) < 0)
                        continue;
                (void) sigaction(c->sig, &sa, NULL);
        }
}

static int send_result(int code, const char *message) {
        char msg[MSG_STR_MAX + 1];

        snprintf(msg, sizeof(msg), "%s", message ? message : "");
        return frame_write_blocking(SCRIPT_FD, MSG_S_RESULT, 0,
                                    &(struct msg_s_result){.exit_code = code, .message = msg}, NULL, 0);
}

_noreturn_ static void finish(int code, const char *message) {
        int r = send_result(code, message);

        if (r < 0)
                log_debug_errno(r, "Could not send the verdict");
        fflush(stdout);
        fflush(stderr);
        _exit(code);
}

/* Read until CONFIG. A restarted worker could get FD_RESTORE/PROC_LIST first;
 * the script worker keeps nothing across restarts and ignores them. */
static int read_config(char **ret_json, char **ret_run_id) {
        for (;;) {
                struct frame f = {};
                int fds[FRAME_FDS_MAX];
                size_t n_fds = 0;
                enum frame_error why = FRAME_OK;
                int r;

                r = frame_read_blocking(SCRIPT_FD, &f, fds, ELEMENTSOF(fds), &n_fds, &why);
                for (size_t i = 0; i < n_fds; i++)
                        safe_close(fds[i]);
                if (r == -EPIPE)
                        return log_error_errno(r, "The supervisor closed the channel before sending CONFIG");
                if (r < 0 && why != FRAME_OK) {
                        log_error("Bad frame from the supervisor: %s", frame_error_to_string(why));
                        return -EPROTO;
                }
                if (r < 0)
                        return log_error_errno(r, "Failed to read from the supervisor");

                switch (f.type) {
                case MSG_CONFIG: {
                        const struct msg_config *c = f.body;

                        *ret_json = strdup(c->json ? c->json : "");
                        *ret_run_id = strdup(c->run_id ? c->run_id : "");
                        frame_done(&f);
                        return *ret_json && *ret_run_id ? 0 : -ENOMEM;
                }
                case MSG_PING:
                        (void) frame_write_blocking(SCRIPT_FD, MSG_PONG, f.seq, f.body, NULL, 0);
                        break;
                case MSG_FD_RESTORE:
                case MSG_PROC_LIST:
                        break;
                default:
                        log_error("Expected CONFIG from the supervisor, got %s", f.info->name);
                        frame_done(&f);
                        return -EPROTO;
                }
                frame_done(&f);
        }
}

static const char *parse_name(int argc, char **argv) {
        static const struct option opts[] = {
                {"name", required_argument, NULL, 'n'},
                {},
        };
        const char *name = "script";
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "+", opts, NULL)) >= 0)
                if (c == 'n')
                        name = optarg;
        return name;
}

int main(int argc, char **argv) {
        _cleanup_free_ char *json = NULL, *run_id = NULL, *pkgdir = NULL, *message = NULL;
        char exe[PATH_MAX];
        struct script_channel *ch;
        const char *name;
        ssize_t n;
        int r, code;

        /* Without the supervisor there is nobody to report to. */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        (void) signal(SIGPIPE, SIG_IGN);

        name = parse_name(argc, argv);
        log_open("vigil-script", LOG_TARGET_AUTO);
        log_set_field("VIGIL_CHILD", name);
        log_set_field("VIGIL_KIND", "script");
        if (getenv("VIGIL_RUN"))
                log_set_field("VIGIL_RUN", getenv("VIGIL_RUN"));

        if (fcntl(SCRIPT_FD, F_GETFD) < 0) {
                fprintf(stderr, "%s: fd %d is not open: this program is started by vigil\n", argv[0], SCRIPT_FD);
                return WORKER_EXIT_CONFIG;
        }
        (void) fd_set_cloexec(SCRIPT_FD, 1);
        crash_handlers_install();

        r = frame_write_blocking(
                SCRIPT_FD, MSG_HELLO, 0,
                &(struct msg_hello){
                        .proto = PROTO_VERSION, .kind = (char *) "script", .name = (char *) name, .pid = getpid()},
                NULL, 0);
        if (r < 0) {
                log_error_errno(r, "Failed to greet the supervisor");
                return WORKER_EXIT_PROTOCOL;
        }
        r = read_config(&json, &run_id);
        if (r < 0)
                return r == -EPROTO ? WORKER_EXIT_PROTOCOL : WORKER_EXIT_CRASH;
        if (*run_id)
                log_set_field("VIGIL_RUN", run_id);

        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[n > 0 ? n : 0] = '\0';
        r = script_python_dir_find(&(struct script_path_inputs){.env_dir = getenv("VIGIL_PYTHON_DIR"),
                                                                .exe = exe,
                                                                .build_root = VIGIL_BUILD_ROOT,
                                                                .source_root = VIGIL_SOURCE_ROOT,
                                                                .sitedir_rel = VIGIL_PYTHON_SITEDIR_REL,
                                                                .pkgdir = VIGIL_PYTHON_PKGDIR},
                                   &pkgdir);
        if (r < 0) {
                log_error("Cannot find vigil's Python package (test_driver): not under $VIGIL_PYTHON_DIR, "
                          "%s/workers/script/python or %s; reinstall vigil or set VIGIL_PYTHON_DIR",
                          VIGIL_SOURCE_ROOT, VIGIL_PYTHON_PKGDIR);
                finish(WORKER_EXIT_CONFIG, "vigil's Python package (test_driver) was not found");
        }

        r = script_channel_start(SCRIPT_FD, SCRIPT_REPLY_MAX, &ch);
        if (r < 0) {
                log_error_errno(r, "Failed to start the channel reader");
                finish(WORKER_EXIT_CRASH, "the script worker could not start");
        }
        r = script_python_init(pkgdir, ch);
        if (r < 0)
                finish(WORKER_EXIT_CONFIG, "the embedded Python could not load vigil's test_driver package");

        r = script_channel_send(ch, MSG_READY, &(struct msg_empty){});
        if (r < 0) {
                log_error_errno(r, "Failed to send READY");
                _exit(WORKER_EXIT_PROTOCOL);
        }

        r = script_python_run(json, &code, &message);
        if (r < 0)
                finish(WORKER_EXIT_CRASH, "vigil's Python runner failed (see the traceback above)");
        finish(code, message);
}
