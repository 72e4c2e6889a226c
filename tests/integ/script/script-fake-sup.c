/* SPDX-License-Identifier: MIT */
/*
 * script-fake-sup: a stand-in for the supervisor *and* the machine workers,
 * to drive a real vigil-script through its whole protocol without VMs (the
 * style guide's "fake worker only to inject faults the real ones cannot").
 *
 * It spawns the worker with a SOCK_SEQPACKET channel at fd 3, answers HELLO
 * with CONFIG, and serves MSG_M_* requests from a model of machines whose
 * "guest shell" is /bin/bash on this host in a scratch directory (so
 * succeed("echo hi") really runs). It can lose the channel after N requests
 * or answer instantly without running anything (for the benchmark).
 *
 * Usage: script-fake-sup [--instant] [--lose-after N] [--console-lines N]
 *                        --config FILE.json -- WORKER [ARGS...]
 * Prints one line at the end:
 *   verdict=<code|none> exit=<code> signal=<n> ready_ms=<t> requests=<n> message=<text>
 * and exits 0 (the test reads the line).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fd-util.h"
#include "frame.h"
#include "macro.h"
#include "peer.h"

#define MACHINES_MAX 8
#define CONSOLE_MAX  4096

struct fake_machine {
        char name[NAME_MAX_LEN + 1];
        bool booted, connected, link_up;
        char *console[CONSOLE_MAX];
        size_t n_console;
        char hmp_log[4096];
};

static struct fake_machine machines[MACHINES_MAX];
static size_t n_machines;
static int chan = -1;
static bool instant;
static long lose_after = -1;
static long console_lines = 3;
static long n_requests;

static double now_ms(void) {
        return (double) now_usec() / 1000.0;
}

static struct fake_machine *machine_get(const char *name) {
        for (size_t i = 0; i < n_machines; i++)
                if (streq(machines[i].name, name))
                        return &machines[i];
        if (n_machines == MACHINES_MAX)
                return NULL;
        snprintf(machines[n_machines].name, sizeof(machines[0].name), "%s", name);
        machines[n_machines].link_up = true;
        return &machines[n_machines++];
}

static void console_add(struct fake_machine *m, const char *line) {
        if (m->n_console < CONSOLE_MAX)
                m->console[m->n_console++] = strdup(line);
}

static int reply(int type, uint32_t seq, const void *body) {
        return frame_write_blocking(chan, type, seq, body, NULL, 0);
}

static int reply_error(uint32_t seq, int code, const char *msg) {
        return reply(MSG_ERROR, seq, &(struct msg_error){.code = code, .message = (char *) msg});
}

static int reply_chunks(uint32_t seq, const uint8_t *data, size_t len) {
        for (size_t off = 0; off < len; off += CHUNK_MAX) {
                size_t n = MIN(CHUNK_MAX, len - off);
                int r = reply(MSG_CHUNK, seq, &(struct msg_chunk){.data = {(uint8_t *) data + off, n}});

                if (r < 0)
                        return r;
        }
        return 0;
}

/* Run @command with bash the way the backdoor does (set -euo pipefail),
 * stdout captured, stderr to our stderr. */
static int run_shell(const char *command, int64_t timeout_s, uint8_t **ret_out, size_t *ret_len, int *ret_status) {
        _cleanup_free_ char *wrapped = NULL, *tmo = NULL;
        int pipefd[2], status;
        uint8_t *out = NULL;
        size_t len = 0, cap = 0;
        pid_t pid;

        if (asprintf(&wrapped, "set -euo pipefail; %s", command) < 0 ||
            asprintf(&tmo, "%lld", (long long) timeout_s) < 0)
                return -ENOMEM;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                dup2(pipefd[1], 1);
                int devnull = open("/dev/null", O_RDONLY);
                dup2(devnull, 0);
                if (timeout_s >= 0)
                        execlp("timeout", "timeout", tmo, "bash", "-c", wrapped, (char *) NULL);
                else
                        execlp("bash", "bash", "-c", wrapped, (char *) NULL);
                _exit(127);
        }
        close(pipefd[1]);
        for (;;) {
                if (len + 65536 > cap) {
                        cap = (cap + 65536) * 2;
                        out = realloc(out, cap);
                }
                ssize_t n = read(pipefd[0], out + len, cap - len);
                if (n <= 0)
                        break;
                len += (size_t) n;
        }
        close(pipefd[0]);
        waitpid(pid, &status, 0);
        *ret_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        *ret_out = out;
        *ret_len = len;
        return 0;
}

static int handle_execute(uint32_t seq, const char *command, int64_t timeout_s, bool check_return, bool check_output) {
        _cleanup_free_ uint8_t *out = NULL;
        size_t len = 0;
        int status = 0, r;

        if (!instant) {
                r = run_shell(command, timeout_s, &out, &len, &status);
                if (r < 0)
                        return reply_error(seq, r, "fake: cannot run the command");
        }
        if (!check_output)
                status = -2;
        else if (!check_return)
                status = -1;
        if (check_output && (r = reply_chunks(seq, out, len)) < 0)
                return r;
        return reply(MSG_M_EXEC_RESULT, seq, &(struct msg_m_exec_result){.status = status, .length = len});
}

static int handle_wait_until(uint32_t seq, const char *command, int64_t timeout_s, bool want) {
        double start = now_ms();

        for (;;) {
                _cleanup_free_ uint8_t *out = NULL;
                size_t len = 0;
                int status = 0, r;
                bool last = now_ms() - start >= (double) timeout_s * 1000.0;

                r = run_shell(command, timeout_s, &out, &len, &status);
                if (r < 0)
                        return reply_error(seq, r, "fake: cannot run the command");
                if ((status == 0) == want || last) {
                        if ((r = reply_chunks(seq, out, len)) < 0)
                                return r;
                        return reply(MSG_M_EXEC_RESULT, seq,
                                     &(struct msg_m_exec_result){.status = status, .length = len});
                }
                sleep(1);
        }
}

static int handle_console_read(uint32_t seq, struct fake_machine *m, uint64_t from) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        for (uint64_t i = from; i < m->n_console; i++)
                fprintf(f, "%s\n", m->console[i]);
        fclose(f);
        if (reply_chunks(seq, (uint8_t *) buf, len) < 0)
                return -EPIPE;
        return reply(MSG_M_TEXT_RESULT, seq, &(struct msg_m_text_result){.length = len, .next_line = m->n_console});
}

static int handle_text_reply(uint32_t seq, const char *text) {
        if (reply_chunks(seq, (const uint8_t *) text, strlen(text)) < 0)
                return -EPIPE;
        return reply(MSG_M_TEXT_RESULT, seq, &(struct msg_m_text_result){.length = strlen(text)});
}

static int handle_request(const struct frame *f) {
        const char *name = *(char *const *) f->body; /* field 0 of every machine request */
        struct fake_machine *m = machine_get(name);
        uint32_t seq = f->seq;
        char text[8192];

        if (!m || strncmp(name, "nosuch", 6) == 0)
                return reply_error(seq, -ENOENT, "no machine with that name");

        switch (f->type) {
        case MSG_M_START:
                /* Like vigil-machine: console lines are numbered over the
                 * machine's whole life, not per start. */
                if (!m->booted) {
                        for (long i = 0; i < console_lines; i++) {
                                snprintf(text, sizeof(text), "fake boot line %ld of %s", i + 1, m->name);
                                console_add(m, text);
                        }
                }
                m->booted = true;
                return reply(MSG_OK, seq, &(struct msg_empty){});
        case MSG_M_CONNECT:
                if (strncmp(name, "neverup", 7) == 0)
                        return reply_error(seq, -ETIMEDOUT, "fake: the shell did not connect");
                m->connected = true;
                return reply(MSG_OK, seq, &(struct msg_empty){});
        case MSG_M_EXECUTE: {
                const struct msg_m_execute *e = f->body;

                return handle_execute(seq, e->command, e->timeout_s, e->check_return, e->check_output);
        }
        case MSG_M_WAIT_UNTIL: {
                const struct msg_m_wait_until *w = f->body;

                return handle_wait_until(seq, w->command, w->timeout_s, w->want_success);
        }
        case MSG_M_SHUTDOWN:
        case MSG_M_CRASH:
                m->booted = m->connected = false;
                console_add(m, "reboot: Power down");
                return reply(MSG_OK, seq, &(struct msg_empty){});
        case MSG_M_REBOOT:
                m->connected = false;
                return reply(MSG_OK, seq, &(struct msg_empty){});
        case MSG_M_WAIT_SHUTDOWN:
                return reply(MSG_OK, seq, &(struct msg_empty){});
        case MSG_M_MONITOR: {
                const struct msg_m_text *t = f->body;

                if (strncmp(t->text, "screendump ", 11) == 0) {
                        /* a 2x1 image: one red and one green pixel */
                        FILE *img = fopen(t->text + 11, "we");
                        if (img) {
                                fputs("P6\n# fake\n2 1\n255\n", img);
                                fwrite("\xff\x00\x00\x00\xff\x00", 1, 6, img);
                                fclose(img);
                        }
                }
                size_t used = strlen(m->hmp_log);

                snprintf(m->hmp_log + used, sizeof(m->hmp_log) - used, "%s;", t->text);
                snprintf(text, sizeof(text), "%s\r\nfake: %s\r\n(qemu) ", t->text, m->hmp_log);
                return handle_text_reply(seq, text);
        }
        case MSG_M_QMP: {
                const struct msg_m_text *t = f->body;

                if (strstr(t->text, "\"nosuch\""))
                        return handle_text_reply(seq, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The "
                                                      "command nosuch has not been found\"}}\n");
                return handle_text_reply(seq, "{\"event\": \"FAKE\"}\n{\"return\": {\"status\": \"running\"}}\n");
        }
        case MSG_M_CONSOLE_READ: {
                const struct msg_m_console_read *c = f->body;

                return handle_console_read(seq, m, c->from_line);
        }
        case MSG_M_SEND_CONSOLE: {
                const struct msg_m_text *t = f->body;
                _cleanup_free_ char *copy = strdup(t->text);
                char *save = NULL;

                for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                        console_add(m, l);
                return reply(MSG_OK, seq, &(struct msg_empty){});
        }
        case MSG_M_STATE:
                return reply(MSG_M_STATE_RESULT, seq,
                             &(struct msg_m_state_result){.booted = m->booted,
                                                          .connected = m->connected,
                                                          .pid = m->booted ? 4242 : 0,
                                                          .backend = (char *) "qemu",
                                                          .worker_pid = getpid()});
        case MSG_M_SET_LINK: {
                const struct msg_m_set_link *l = f->body;

                m->link_up = l->up;
                size_t used = strlen(m->hmp_log);

                snprintf(m->hmp_log + used, sizeof(m->hmp_log) - used, "set_link %s;", l->up ? "on" : "off");
                return reply(MSG_OK, seq, &(struct msg_empty){});
        }
        case MSG_W_SET_LINK: {
                const struct msg_w_set_link *w = f->body;

                if (!streq(w->from, "alpha") && !streq(w->from, "server") && !streq(w->from, "client"))
                        return reply_error(seq, -ENOENT, "fake switch: unknown machine");
                fprintf(stderr, "fake-sup: %s rule %s->%s both=%d drop=%d loss_ppm=%llu\n", name, w->from, w->to,
                        w->both, w->drop, (unsigned long long) w->loss_ppm);
                return reply(MSG_OK, seq, &(struct msg_empty){});
        }
        case MSG_W_CLEAR:
                return reply(MSG_OK, seq, &(struct msg_empty){});
        case MSG_W_STATS:
                return handle_text_reply(seq, "{\"vlan\": 1, \"frames\": 42, \"bytes\": 4200, \"ports\": []}");
        default:
                return reply_error(seq, -EOPNOTSUPP, "fake: not supported by this backend");
        }
}

static char *read_file(const char *path) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t len = 0;

        if (!f)
                return NULL;
        FILE *m = open_memstream(&buf, &len);
        int c;
        while ((c = fgetc(f)) != EOF)
                fputc(c, m);
        fclose(m);
        fclose(f);
        return buf;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                {"instant", no_argument, NULL, 'i'},
                {"lose-after", required_argument, NULL, 'l'},
                {"console-lines", required_argument, NULL, 'c'},
                {"config", required_argument, NULL, 'C'},
                {},
        };
        _cleanup_free_ char *config = NULL, *message = NULL;
        int sv[2], c, status = 0;
        long long verdict = LLONG_MIN;
        double t0, ready_ms = -1;
        pid_t pid;

        while ((c = getopt_long(argc, argv, "+", opts, NULL)) >= 0)
                switch (c) {
                case 'i':
                        instant = true;
                        break;
                case 'l':
                        lose_after = atol(optarg);
                        break;
                case 'c':
                        console_lines = atol(optarg);
                        break;
                case 'C':
                        config = read_file(optarg);
                        break;
                default:
                        fprintf(stderr, "usage: %s [--instant] [--lose-after N] --config F -- WORKER ARGS\n", argv[0]);
                        return 2;
                }
        if (!config || optind >= argc) {
                fprintf(stderr, "%s: need --config FILE and a worker command\n", argv[0]);
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return 1;
        t0 = now_ms();
        pid = fork();
        if (pid == 0) {
                if (fd_move_to(sv[1], 3) < 0)
                        _exit(127);
                execv(argv[optind], argv + optind);
                _exit(127);
        }
        close(sv[1]);
        chan = sv[0];

        for (;;) {
                struct frame f = {};
                enum frame_error why = FRAME_OK;
                int r = frame_read_blocking(chan, &f, NULL, 0, NULL, &why);

                if (r < 0) {
                        if (r != -EPIPE) /* say why, should a verdict go missing */
                                fprintf(stderr, "fake-sup: reading from the worker: %s%s%s\n", strerror(-r),
                                        why != FRAME_OK ? ", " : "",
                                        why != FRAME_OK ? frame_error_to_string(why) : "");
                        break;
                }
                switch (f.type) {
                case MSG_HELLO:
                        reply(MSG_CONFIG, 0,
                              &(struct msg_config){.restarts = 0, .run_id = (char *) "fake-run", .json = config});
                        break;
                case MSG_READY:
                        ready_ms = now_ms() - t0;
                        break;
                case MSG_S_RESULT: {
                        const struct msg_s_result *s = f.body;

                        verdict = s->exit_code;
                        free(message);
                        message = strdup(s->message);
                        break;
                }
                case MSG_S_ADD_MACHINE: {
                        /* The real supervisor adds a machine worker; this one has none to add. */
                        reply_error(f.seq, -EOPNOTSUPP, "the fake supervisor cannot add machines");
                        break;
                }
                case MSG_CHANNEL_OPEN:
                        /* Requests to machines then go through here, as with a supervisor of before. */
                        reply_error(f.seq, -EOPNOTSUPP, "the fake supervisor brokers no channels");
                        break;
                case MSG_EVENT: {
                        const struct msg_event *e = f.body;

                        fprintf(stderr, "fake-sup: event %s: %s\n", e->event, e->message);
                        break;
                }
                default:
                        if (f.info->route == ROUTE_REQUEST) {
                                n_requests++;
                                if (lose_after >= 0 && n_requests > lose_after) {
                                        frame_done(&f);
                                        shutdown(chan, SHUT_RDWR);
                                        goto done;
                                }
                                handle_request(&f);
                        }
                        break;
                }
                frame_done(&f);
        }
done:
        waitpid(pid, &status, 0);
        printf("verdict=");
        if (verdict == LLONG_MIN)
                printf("none");
        else
                printf("%lld", verdict);
        printf(" exit=%d signal=%d ready_ms=%.1f requests=%ld message=%s\n",
               WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0, ready_ms,
               n_requests, message ? message : "");
        return 0;
}
