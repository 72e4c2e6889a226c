/* SPDX-License-Identifier: MIT */
/*
 * vigil-testworker: a worker that misbehaves on command, for the supervisor's
 * tests and benchmark. It speaks the real protocol through workers/common, so
 * everything it does not fake is the real thing: it answers T_ECHO, and after
 * READY it can crash, exit with any code, hang, ignore SIGTERM, send each kind
 * of bad frame, flood its queue, leave a detached grandchild, have the
 * supervisor spawn a process, store an fd and check it comes back, or drive
 * echo traffic to another test worker and report the latency, or read its
 * channel slowly (a consumer that lags behind a fast producer). Everything it
 * observes is reported as a MSG_EVENT (so it lands in timeline.jsonl).
 */
#include <fcntl.h>
#include <getopt.h>
#include <msgpack.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "exit-status.h"
#include "fd-util.h"
#include "log.h"
#include "time-util.h"
#include "worker.h"

#define ECHO_MAX 1000000

struct tw {
        struct worker *w;
        /* options */
        int crash_after_ms, exit_code, after_ms, ready_delay_ms;
        const char *once_file;
        bool hang, ignore_sigterm, garbage, oversized, unknown_type, wrong_direction, flood;
        bool spawn_grandchild, spawn_via_sup, exit_when_done;
        const char *store_fd, *echo_to, *spawn_program;
        int count, window, payload, interval_ms, store_many, kill_spawned_ms, slow_read_ms;
        bool forget_fd, direct, crash_mid_reply;
        int reply_chunks;        /* --reply-chunks: echo replies send the payload this many times as CHUNKs first */
        long expect_chunk_bytes; /* --expect-chunk-bytes: what each echo reply must bring in CHUNKs */
        long got_chunk_bytes;
        /* state */
        struct peer *echo_peer; /* --direct: the brokered channel to echo_to */
        uint32_t open_seq;
        bool misbehave;
        struct event *ev_ready, *ev_act, *ev_echo, *ev_kill, *ev_slow;
        int sent, ok, errors, in_flight;
        uint64_t *sent_at; /* by seq */
        uint64_t *rtt;     /* per completed echo */
        uint64_t t0;
        uint32_t spawn_seq;
};

static int tw_parse(struct tw *t, int argc, char **argv) {
        enum {
                O_CRASH = 0x100,
                O_EXIT,
                O_AFTER,
                O_ONCE,
                O_HANG,
                O_IGN,
                O_GARBAGE,
                O_OVERSIZED,
                O_UNKNOWN,
                O_WRONG,
                O_FLOOD,
                O_GRAND,
                O_VIA,
                O_STORE,
                O_ECHO,
                O_COUNT,
                O_WINDOW,
                O_PAYLOAD,
                O_INTERVAL,
                O_READY_DELAY,
                O_DONE,
                O_NAME,
                O_SPAWN_PROGRAM,
                O_STORE_MANY,
                O_KILL_SPAWNED,
                O_FORGET,
                O_SLOW_READ,
                O_DIRECT_CHANNEL,
                O_REPLY_CHUNKS,
                O_CRASH_MID_REPLY,
                O_EXPECT_CHUNK_BYTES,
        };
        static const struct option opts[] = {
                {"name", required_argument, NULL, O_NAME},
                {"crash-after-ms", required_argument, NULL, O_CRASH},
                {"exit-code", required_argument, NULL, O_EXIT},
                {"after-ms", required_argument, NULL, O_AFTER},
                {"once-file", required_argument, NULL, O_ONCE},
                {"hang", no_argument, NULL, O_HANG},
                {"ignore-sigterm", no_argument, NULL, O_IGN},
                {"garbage", no_argument, NULL, O_GARBAGE},
                {"oversized", no_argument, NULL, O_OVERSIZED},
                {"unknown-type", no_argument, NULL, O_UNKNOWN},
                {"wrong-direction", no_argument, NULL, O_WRONG},
                {"flood", no_argument, NULL, O_FLOOD},
                {"spawn-grandchild", no_argument, NULL, O_GRAND},
                {"spawn-via-supervisor", no_argument, NULL, O_VIA},
                {"spawn-program", required_argument, NULL, O_SPAWN_PROGRAM},
                {"store-fd", required_argument, NULL, O_STORE},
                {"store-many", required_argument, NULL, O_STORE_MANY},
                {"kill-spawned-after-ms", required_argument, NULL, O_KILL_SPAWNED},
                {"forget-fd", no_argument, NULL, O_FORGET},
                {"echo-to", required_argument, NULL, O_ECHO},
                {"count", required_argument, NULL, O_COUNT},
                {"window", required_argument, NULL, O_WINDOW},
                {"payload", required_argument, NULL, O_PAYLOAD},
                {"interval-ms", required_argument, NULL, O_INTERVAL},
                {"ready-delay-ms", required_argument, NULL, O_READY_DELAY},
                {"exit-when-done", no_argument, NULL, O_DONE},
                {"slow-read-ms", required_argument, NULL, O_SLOW_READ},
                {"direct", no_argument, NULL, O_DIRECT_CHANNEL},
                {"reply-chunks", required_argument, NULL, O_REPLY_CHUNKS},
                {"crash-mid-reply", no_argument, NULL, O_CRASH_MID_REPLY},
                {"expect-chunk-bytes", required_argument, NULL, O_EXPECT_CHUNK_BYTES},
                {},
        };
        int c;

        optind = 1;
        opterr = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case O_NAME:
                        break;
                case O_CRASH:
                        t->crash_after_ms = atoi(optarg);
                        break;
                case O_EXIT:
                        t->exit_code = atoi(optarg);
                        break;
                case O_AFTER:
                        t->after_ms = atoi(optarg);
                        break;
                case O_ONCE:
                        t->once_file = optarg;
                        break;
                case O_HANG:
                        t->hang = true;
                        break;
                case O_IGN:
                        t->ignore_sigterm = true;
                        break;
                case O_GARBAGE:
                        t->garbage = true;
                        break;
                case O_OVERSIZED:
                        t->oversized = true;
                        break;
                case O_UNKNOWN:
                        t->unknown_type = true;
                        break;
                case O_WRONG:
                        t->wrong_direction = true;
                        break;
                case O_FLOOD:
                        t->flood = true;
                        break;
                case O_GRAND:
                        t->spawn_grandchild = true;
                        break;
                case O_VIA:
                        t->spawn_via_sup = true;
                        break;
                case O_SPAWN_PROGRAM:
                        t->spawn_program = optarg;
                        break;
                case O_STORE:
                        t->store_fd = optarg;
                        break;
                case O_STORE_MANY:
                        t->store_many = atoi(optarg);
                        break;
                case O_KILL_SPAWNED:
                        t->kill_spawned_ms = atoi(optarg);
                        break;
                case O_FORGET:
                        t->forget_fd = true;
                        break;
                case O_SLOW_READ:
                        t->slow_read_ms = atoi(optarg);
                        break;
                case O_ECHO:
                        t->echo_to = optarg;
                        break;
                case O_COUNT:
                        t->count = atoi(optarg);
                        break;
                case O_WINDOW:
                        t->window = atoi(optarg);
                        break;
                case O_PAYLOAD:
                        t->payload = atoi(optarg);
                        break;
                case O_INTERVAL:
                        t->interval_ms = atoi(optarg);
                        break;
                case O_READY_DELAY:
                        t->ready_delay_ms = atoi(optarg);
                        break;
                case O_DONE:
                        t->exit_when_done = true;
                        break;
                case O_DIRECT_CHANNEL:
                        t->direct = true;
                        break;
                case O_REPLY_CHUNKS:
                        t->reply_chunks = atoi(optarg);
                        break;
                case O_CRASH_MID_REPLY:
                        t->crash_mid_reply = true;
                        break;
                case O_EXPECT_CHUNK_BYTES:
                        t->expect_chunk_bytes = atol(optarg);
                        break;
                default:
                        return -EINVAL;
                }
        if (t->count < 0 || t->count > ECHO_MAX || t->window < 0 || t->payload < 0 || t->payload > (int) CHUNK_MAX)
                return -EINVAL;
        if (t->window == 0)
                t->window = 1;
        optind = 1;
        return 0;
}

static struct timeval ms_tv(int ms) {
        return timeval_from_msec(ms > 0 ? (uint64_t) ms : 0);
}

/* ---- bad frames, written straight to the channel ---- */

static void send_raw(struct tw *t, const void *buf, size_t len) {
        int r = fd_send_datagram(peer_fd(worker_peer(t->w)), buf, len, NULL, 0);
        if (r < 0)
                log_warning_errno(r, "Sending the bad frame failed");
}

static void send_bad_frames(struct tw *t) {
        if (t->garbage) {
                static const uint8_t junk[] = {0xc1, 0xff, 0x00, 'g', 'a', 'r', 'b', 'a', 'g', 'e', 0x93};
                worker_send_event(t->w, "misbehave", "sending garbage");
                send_raw(t, junk, sizeof(junk));
        }
        if (t->oversized) {
                size_t n = FRAME_MAX + 4096;
                uint8_t *big = calloc(1, n);
                if (big) {
                        worker_send_event(t->w, "misbehave", "sending an oversized frame");
                        send_raw(t, big, n);
                        free(big);
                }
        }
        if (t->unknown_type) {
                msgpack_sbuffer sb;
                msgpack_packer pk;
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_array(&pk, 4);
                msgpack_pack_uint32(&pk, PROTO_VERSION);
                msgpack_pack_uint32(&pk, 999);
                msgpack_pack_uint32(&pk, 0);
                msgpack_pack_array(&pk, 0);
                worker_send_event(t->w, "misbehave", "sending an unknown message type");
                send_raw(t, sb.data, sb.size);
                msgpack_sbuffer_destroy(&sb);
        }
        if (t->wrong_direction) {
                /* CONFIG only ever travels supervisor -> worker. */
                worker_send_event(t->w, "misbehave", "sending a supervisor-only message");
                (void) peer_send(worker_peer(t->w), MSG_CONFIG, 0,
                                 &(struct msg_config){.restarts = 0, .run_id = (char *) "x", .json = (char *) "{}"},
                                 NULL, 0);
        }
}

/* Write PINGs and never read the PONGs: the supervisor's queue towards us
 * fills up and it must drop us, not grow without bound. */
_noreturn_ static void flood(struct tw *t) {
        static uint8_t payload[32 * 1024];
        _cleanup_free_ uint8_t *buf = NULL;
        int fd = peer_fd(worker_peer(t->w));
        size_t len;
        uint64_t sent = 0;

        worker_send_event(t->w, "misbehave", "flooding");
        if (frame_encode(MSG_PING, 1, &(struct msg_ping){.payload = {payload, sizeof(payload)}}, &buf, &len) < 0)
                _exit(WORKER_EXIT_CRASH);
        for (;;) {
                int r = fd_send_datagram(fd, buf, len, NULL, 0);
                if (r == -EAGAIN) {
                        struct pollfd p = {.fd = fd, .events = POLLOUT};
                        (void) poll(&p, 1, 100);
                        continue;
                }
                if (r < 0) {
                        fprintf(stderr, "vigil-testworker: flood ended after %llu pings: %s\n",
                                (unsigned long long) sent, strerror(-r));
                        _exit(WORKER_EXIT_CRASH);
                }
                sent++;
        }
}

/* ---- misbehaviour after READY ---- */

static void on_act(evutil_socket_t fd, short what, void *arg) {
        struct tw *t = arg;

        if (t->crash_after_ms > 0) {
                fprintf(stderr, "vigil-testworker %s: crashing as asked\n", worker_name(t->w));
                _exit(WORKER_EXIT_CRASH);
        }
        if (t->exit_code >= 0) {
                fprintf(stderr, "vigil-testworker %s: exiting with %d as asked\n", worker_name(t->w), t->exit_code);
                _exit(t->exit_code);
        }
        send_bad_frames(t);
        if (t->flood)
                flood(t);
        if (t->hang) {
                worker_send_event(t->w, "misbehave", "hanging");
                for (;;)
                        pause();
        }
}

static void spawn_grandchild(struct tw *t) {
        pid_t pid = fork();

        if (pid == 0) {
                /* Detached and not a child of the supervisor: only the subreaper or
                 * the PID namespace can catch it. */
                (void) setsid();
                for (int i = 3; i < 1024; i++)
                        (void) close(i);
                execlp("sleep", "sleep", "1000", (char *) NULL);
                _exit(127);
        }
        if (pid > 0)
                worker_send_event(t->w, "grandchild", "%d", (int) pid);
}

static void spawn_via_supervisor(struct tw *t) {
        char path[512];
        char *argv[] = {(char *) (t->spawn_program ?: "sleep"), (char *) "1000", NULL};
        char *env[] = {path, NULL};

        snprintf(path, sizeof(path), "PATH=%s", getenv("PATH") ?: "/usr/bin:/bin");
        t->spawn_seq = peer_next_seq(worker_peer(t->w));
        (void) peer_send(worker_peer(t->w), MSG_SPAWN, t->spawn_seq,
                         &(struct msg_spawn){
                                 .name = (char *) "sleeper", .argv = argv, .env = env, .cwd = (char *) "", .stdio = 0},
                         NULL, 0);
}

static void on_kill_spawned(evutil_socket_t fd, short what, void *arg) {
        struct tw *t = arg;

        /* With a seq, so the supervisor answers OK (or ERROR). */
        (void) peer_send(worker_peer(t->w), MSG_PROC_KILL, peer_next_seq(worker_peer(t->w)),
                         &(struct msg_proc_kill){.name = (char *) "sleeper", .signal = SIGTERM}, NULL, 0);
        worker_send_event(t->w, "proc_kill_sent", "sleeper SIGTERM");
}

static void store_or_check_fd(struct tw *t) {
        char want[128], got[128] = "";
        int fd = worker_take_fd(t->w, t->store_fd);

        snprintf(want, sizeof(want), "vigil-fd-store:%s", t->store_fd);
        if (fd >= 0) {
                ssize_t n = pread(fd, got, sizeof(got) - 1, 0);
                got[n > 0 ? n : 0] = '\0';
                worker_send_event(t->w, streq(got, want) ? "fd_restored" : "fd_corrupt", "%s %s", t->store_fd, got);
                /* Keep it stored for the next restart too. */
                (void) worker_store_fd(t->w, t->store_fd, fd);
                safe_close(fd);
                return;
        }
        if (worker_restarts(t->w) > 0)
                worker_send_event(t->w, "fd_missing", "%s", t->store_fd);
        fd = memfd_create("vigil-testworker", MFD_CLOEXEC);
        if (fd < 0 || write(fd, want, strlen(want)) != (ssize_t) strlen(want)) {
                worker_send_event(t->w, "fd_error", "memfd: %s", strerror(errno));
                safe_close(fd);
                return;
        }
        (void) worker_store_fd(t->w, t->store_fd, fd);
        worker_send_event(t->w, "fd_created", "%s", t->store_fd);
        safe_close(fd);
        if (t->forget_fd) {
                (void) worker_forget_fd(t->w, t->store_fd);
                worker_send_event(t->w, "fd_forgotten", "%s", t->store_fd);
        }
}

/* --store-many N: N small fds, stored on the first start and counted back after a restart. */
static void store_many(struct tw *t) {
        int restored = 0, intact = 0;

        for (int i = 0; i < t->store_many; i++) {
                char name[32], want[32], got[32] = "";
                snprintf(name, sizeof(name), "m%d", i);
                snprintf(want, sizeof(want), "many-%d", i);
                int fd = worker_take_fd(t->w, name);
                if (fd >= 0) {
                        restored++;
                        ssize_t n = pread(fd, got, sizeof(got) - 1, 0);
                        got[n > 0 ? n : 0] = '\0';
                        intact += streq(got, want);
                        safe_close(fd);
                        continue;
                }
                if (worker_restarts(t->w) > 0)
                        continue;
                fd = memfd_create(name, MFD_CLOEXEC);
                if (fd < 0 || write(fd, want, strlen(want)) < 0 || worker_store_fd(t->w, name, fd) < 0) {
                        worker_send_event(t->w, "fd_error", "storing %s: %s", name, strerror(errno));
                        safe_close(fd);
                        return;
                }
                safe_close(fd);
        }
        if (worker_restarts(t->w) > 0)
                worker_send_event(t->w, "fd_many_restored", "%d/%d intact=%d", restored, t->store_many, intact);
        else
                worker_send_event(t->w, "fd_many_stored", "%d", t->store_many);
}

/* ---- echo traffic ---- */

static void echo_report(struct tw *t) {
        uint64_t total = now_usec() - t->t0, sum = 0, p50 = 0, p99 = 0;
        int n = t->ok;

        /* insertion sort is plenty for a report; the counts are small or sorted-ish */
        for (int i = 1; i < n; i++) {
                uint64_t v = t->rtt[i];
                int j = i - 1;
                while (j >= 0 && t->rtt[j] > v) {
                        t->rtt[j + 1] = t->rtt[j];
                        j--;
                }
                t->rtt[j + 1] = v;
        }
        for (int i = 0; i < n; i++)
                sum += t->rtt[i];
        if (n > 0) {
                p50 = t->rtt[n / 2];
                p99 = t->rtt[MIN(n - 1, n * 99 / 100)];
        }
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "count=%d ok=%d errors=%d avg_us=%.1f p50_us=%llu p99_us=%llu total_us=%llu msgs_per_s=%.0f",
                 t->count, t->ok, t->errors, n ? (double) sum / n : 0.0, (unsigned long long) p50,
                 (unsigned long long) p99, (unsigned long long) total,
                 total ? (double) n * 1e6 / (double) total : 0.0);
        worker_send_event(t->w, "echo_done", "%s", msg);
        printf("%s: %s\n", worker_name(t->w), msg);
        fflush(stdout);
        if (t->exit_when_done)
                worker_exit(t->w, WORKER_EXIT_OK);
}

static void echo_send_one(struct tw *t) {
        static uint8_t payload[CHUNK_MAX];
        uint32_t seq = (uint32_t) t->sent + 1;

        t->sent_at[t->sent] = now_usec();
        t->sent++;
        t->in_flight++;
        struct peer *to = t->echo_peer && !peer_is_lost(t->echo_peer) ? t->echo_peer : worker_peer(t->w);

        if (peer_send(to, MSG_T_ECHO, seq,
                      &(struct msg_t_echo){.target = (char *) t->echo_to, .payload = {payload, (size_t) t->payload}},
                      NULL, 0) < 0) {
                t->in_flight--;
                t->errors++;
        }
}

static void echo_pump(struct tw *t) {
        if (t->interval_ms > 0)
                return; /* paced by the timer */
        while (t->sent < t->count && t->in_flight < t->window)
                echo_send_one(t);
        if (t->ok + t->errors >= t->count)
                echo_report(t);
}

static void on_echo_tick(evutil_socket_t fd, short what, void *arg) {
        struct tw *t = arg;

        if (t->sent < t->count)
                echo_send_one(t);
        if (t->sent < t->count) {
                struct timeval tv = ms_tv(t->interval_ms);
                (void) event_add(t->ev_echo, &tv);
        }
}

static void echo_done_one(struct tw *t, uint32_t seq, bool ok, const char *err) {
        if (seq == 0 || seq > (uint32_t) t->sent)
                return;
        t->in_flight--;
        if (ok)
                t->rtt[t->ok++] = now_usec() - t->sent_at[seq - 1];
        else {
                t->errors++;
                worker_send_event(t->w, "echo_error", "seq %u: %s", seq, err);
        }
        if (t->interval_ms > 0) {
                if (t->ok + t->errors >= t->count)
                        echo_report(t);
        } else
                echo_pump(t);
}

static void echo_start(struct tw *t) {
        t->t0 = now_usec();
        if (t->interval_ms > 0) {
                t->ev_echo = evtimer_new(worker_event_base(t->w), on_echo_tick, t);
                struct timeval tv = ms_tv(0);
                (void) event_add(t->ev_echo, &tv);
        } else
                echo_pump(t);
}

/* ---- --direct: echo over a channel the supervisor brokers ---- */

static int direct_on_frame(struct peer *p, const struct frame *f, int *fds, size_t n_fds, void *userdata) {
        struct tw *t = userdata;

        if (f->type == MSG_OK && f->seq == 0)
                return 0; /* b took its end */
        if (f->type == MSG_T_ECHO_REPLY)
                echo_done_one(t, f->seq, true, NULL);
        else if (f->type == MSG_ERROR)
                echo_done_one(t, f->seq, false, ((const struct msg_error *) f->body)->message);
        else
                return -EBADMSG;
        return 0;
}

static void direct_on_lost(struct peer *p, enum peer_lost_reason reason, const char *detail, void *userdata) {
        struct tw *t = userdata;

        worker_send_event(t->w, "channel_lost", "%s", detail);
        /* What was in flight on it is gone: count it, and go on through the supervisor. */
        t->errors += t->in_flight;
        t->in_flight = 0;
}

static const struct peer_ops direct_peer_ops = {.on_frame = direct_on_frame, .on_lost = direct_on_lost};

static void direct_open(struct tw *t) {
        t->open_seq = ROUTE_SEQ_DIRECT - 1; /* apart from the echo seqs (1..count) */
        if (peer_send(worker_peer(t->w), MSG_CHANNEL_OPEN, t->open_seq,
                      &(struct msg_channel_open){.target = (char *) t->echo_to}, NULL, 0) < 0)
                worker_exit(t->w, WORKER_EXIT_CRASH);
}

static int direct_opened(struct tw *t, const struct frame *f, int *fds, size_t n_fds) {
        struct peer *p;

        if (f->type == MSG_ERROR)
                worker_send_event(t->w, "channel_error", "%s", ((const struct msg_error *) f->body)->message);
        else if (n_fds == 1 &&
                 peer_new(worker_event_base(t->w), fds[0], DIR_TO_WORKER, &direct_peer_ops, t, &p) >= 0) {
                fds[0] = -EBADF;
                t->echo_peer = p;
                worker_send_event(t->w, "channel_open", "to %s", ((const struct msg_channel *) f->body)->peer);
        }
        echo_start(t);
        return 0;
}

/* --reply-chunks: the payload as CHUNKs before the reply. --crash-mid-reply
 * (first life only, with --once-file): half of them, written out at once, then
 * die, as a worker that crashes while streaming a reply. */
static void reply_in_chunks(struct tw *t, uint32_t seq, const struct msg_bytes *payload) {
        const struct msg_chunk chunk = {.data = *payload};

        if (!t->crash_mid_reply || !t->misbehave) {
                for (int i = 0; i < t->reply_chunks; i++)
                        (void) worker_reply(t->w, MSG_CHUNK, seq, &chunk);
                return;
        }
        for (int i = 0; i < t->reply_chunks / 2; i++) {
                _cleanup_free_ uint8_t *buf = NULL;
                size_t len;
                if (frame_encode(MSG_CHUNK, seq, &chunk, &buf, &len) >= 0)
                        send_raw(t, buf, len);
        }
        _exit(1);
}

/* ---- worker ops ---- */

static void go_ready(struct tw *t) {
        int r = worker_send_ready(t->w);
        if (r < 0)
                return;
        log_info("Test worker ready (restart %llu)", (unsigned long long) worker_restarts(t->w));

        if (t->ignore_sigterm) {
                /* Overrides the worker library's handler: SIGTERM does nothing now. */
                (void) signal(SIGTERM, SIG_IGN);
                worker_send_event(t->w, "misbehave", "ignoring SIGTERM");
        }
        if (t->spawn_grandchild)
                spawn_grandchild(t);
        if (t->spawn_via_sup && worker_restarts(t->w) == 0)
                spawn_via_supervisor(t);
        if (t->misbehave) {
                bool any = t->crash_after_ms > 0 || t->exit_code >= 0 || t->garbage || t->oversized ||
                           t->unknown_type || t->wrong_direction || t->flood || t->hang;
                if (any) {
                        int ms = t->crash_after_ms > 0 ? t->crash_after_ms : t->after_ms;
                        struct timeval tv = ms_tv(ms);
                        t->ev_act = evtimer_new(worker_event_base(t->w), on_act, t);
                        (void) event_add(t->ev_act, &tv);
                }
        }
        if (t->echo_to && t->count > 0) {
                t->sent_at = calloc((size_t) t->count, sizeof(uint64_t));
                t->rtt = calloc((size_t) t->count, sizeof(uint64_t));
                if (!t->sent_at || !t->rtt) {
                        worker_exit(t->w, WORKER_EXIT_CRASH);
                        return;
                }
                if (t->direct)
                        direct_open(t);
                else
                        echo_start(t);
        }
}

static void on_ready_delay(evutil_socket_t fd, short what, void *arg) {
        go_ready(arg);
}

static int tw_configure(struct worker *w, const struct msg_config *cfg, void *userdata) {
        struct tw *t = userdata;
        size_t n_procs;
        const struct worker_restored_proc *procs = worker_procs(w, &n_procs);

        t->w = w;
        /* --once-file: misbehave the first time only, so "crash once, then behave". */
        t->misbehave = true;
        if (t->once_file) {
                int fd = open(t->once_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                if (fd < 0)
                        t->misbehave = false;
                safe_close(fd);
        }
        for (size_t i = 0; i < n_procs; i++)
                worker_send_event(w, "proc_restored", "%s %lld", procs[i].name, (long long) procs[i].pid);
        if (t->store_fd)
                store_or_check_fd(t);
        if (t->store_many > 0)
                store_many(t);

        if (t->ready_delay_ms > 0) {
                struct timeval tv = ms_tv(t->ready_delay_ms);
                t->ev_ready = evtimer_new(worker_event_base(w), on_ready_delay, t);
                (void) event_add(t->ev_ready, &tv);
        } else
                go_ready(t);
        return 0;
}

static void on_slow_resume(evutil_socket_t fd, short what, void *arg) {
        struct tw *t = arg;
        (void) peer_pause_read(worker_peer(t->w), false);
}

/* --slow-read-ms: after each request, read nothing for that long. */
static void slow_read(struct tw *t) {
        struct timeval tv = ms_tv(t->slow_read_ms);

        if (t->slow_read_ms <= 0)
                return;
        if (!t->ev_slow)
                t->ev_slow = evtimer_new(worker_event_base(t->w), on_slow_resume, t);
        if (t->ev_slow && peer_pause_read(worker_peer(t->w), true) == 0)
                (void) event_add(t->ev_slow, &tv);
}

static int tw_on_frame(struct worker *w, const struct frame *f, int *fds, size_t n_fds, void *userdata) {
        struct tw *t = userdata;

        if (t->open_seq && f->seq == t->open_seq && (f->type == MSG_CHANNEL || f->type == MSG_ERROR))
                return direct_opened(t, f, fds, n_fds);
        switch (f->type) {
        case MSG_T_ECHO: {
                const struct msg_t_echo *m = f->body;
                slow_read(t);
                if (t->reply_chunks > 0)
                        reply_in_chunks(t, f->seq, &m->payload);
                return worker_reply(w, MSG_T_ECHO_REPLY, f->seq,
                                    &(struct msg_t_echo){.target = (char *) worker_name(w), .payload = m->payload});
        }
        case MSG_T_ECHO_REPLY:
                if (t->expect_chunk_bytes > 0 && t->got_chunk_bytes != t->expect_chunk_bytes) {
                        char why[96];
                        snprintf(why, sizeof why, "got %ld chunk bytes, want %ld", t->got_chunk_bytes,
                                 t->expect_chunk_bytes);
                        t->got_chunk_bytes = 0;
                        echo_done_one(t, f->seq, false, why);
                        return 0;
                }
                t->got_chunk_bytes = 0;
                echo_done_one(t, f->seq, true, NULL);
                return 0;
        case MSG_CHUNK:
                t->got_chunk_bytes += (long) ((const struct msg_chunk *) f->body)->data.len;
                return 0;
        case MSG_ERROR: {
                const struct msg_error *m = f->body;
                if (t->spawn_seq && f->seq == t->spawn_seq) {
                        worker_send_event(w, "spawn_error", "%s", m->message);
                        return 0;
                }
                t->got_chunk_bytes = 0; /* what came of that reply ends with it */
                echo_done_one(t, f->seq, false, m->message);
                return 0;
        }
        case MSG_SPAWNED: {
                const struct msg_spawned *m = f->body;
                worker_send_event(w, "spawned", "%s %lld", m->name, (long long) m->pid);
                if (t->kill_spawned_ms > 0 && !t->ev_kill) {
                        struct timeval tv = ms_tv(t->kill_spawned_ms);
                        t->ev_kill = evtimer_new(worker_event_base(w), on_kill_spawned, t);
                        (void) event_add(t->ev_kill, &tv);
                }
                return 0;
        }
        case MSG_PROC_EXIT: {
                const struct msg_proc_exit *m = f->body;
                worker_send_event(w, "proc_exit", "%s %lld code=%lld signal=%lld", m->name, (long long) m->pid,
                                  (long long) m->code, (long long) m->signal);
                return 0;
        }
        case MSG_OK:
                if (t->ev_kill)
                        worker_send_event(w, "proc_kill_ok", "%u", f->seq);
                return 0;
        case MSG_PONG:
                return 0;
        default:
                return -EBADMSG;
        }
}

static void tw_on_exit(struct worker *w, void *userdata) {
        struct tw *t = userdata;

        if (t->ev_ready)
                event_free(t->ev_ready);
        if (t->ev_act)
                event_free(t->ev_act);
        if (t->ev_echo)
                event_free(t->ev_echo);
        if (t->ev_kill)
                event_free(t->ev_kill);
        if (t->ev_slow)
                event_free(t->ev_slow);
        peer_free(t->echo_peer);
        free(t->sent_at);
        free(t->rtt);
}

int main(int argc, char **argv) {
        static const struct worker_ops ops = {
                .kind = KIND_TEST,
                .configure = tw_configure,
                .on_frame = tw_on_frame,
                .on_exit = tw_on_exit,
        };
        struct tw t = {.exit_code = -1};

        if (tw_parse(&t, argc, argv) < 0) {
                fprintf(stderr, "vigil-testworker: bad arguments\n");
                return WORKER_EXIT_CONFIG;
        }
        return worker_main(argc, argv, &ops, &t);
}
