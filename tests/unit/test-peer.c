/* SPDX-License-Identifier: MIT */
/*
 * Proves the peer's contract on a real socketpair: frames and their fds
 * arrive intact, and each way a peer can go bad (wrong direction, garbage,
 * oversized datagram, queue overflow, EOF) is reported exactly once, because
 * the supervisor's whole safety story rests on that single report, and only
 * after the last frames the other side sent before it closed. Also the
 * flow control that keeps bulk traffic lossless: a congested queue reports
 * when it drained, and a paused peer reads again after resuming, including
 * what arrived while it was paused and what it had already taken from the
 * socket in the same batch.
 */
#include <event2/event.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>

#include "fd-util.h"
#include "macro.h"
#include "peer.h"
#include "tap.h"

struct ctx {
        int frames;
        int last_type;
        int lost_calls;
        enum peer_lost_reason reason;
        char detail[256];
        char fd_content[32];
        int drained;
};

static int on_frame(struct peer *p, const struct frame *f, int *fds, size_t n_fds, void *userdata) {
        struct ctx *c = userdata;

        c->frames++;
        c->last_type = f->type;
        if (n_fds > 0) {
                _cleanup_close_ int fd = TAKE_FD(fds[0]);
                ssize_t n = read(fd, c->fd_content, sizeof(c->fd_content) - 1);
                if (n > 0)
                        c->fd_content[n] = 0;
        }
        return 0;
}

static void on_lost(struct peer *p, enum peer_lost_reason reason, const char *detail, void *userdata) {
        struct ctx *c = userdata;

        c->lost_calls++;
        c->reason = reason;
        snprintf(c->detail, sizeof(c->detail), "%s", detail);
}

static void on_drained(struct peer *p, void *userdata) {
        struct ctx *c = userdata;

        c->drained++;
}

static const struct peer_ops ops = {.on_frame = on_frame, .on_lost = on_lost, .on_drained = on_drained};

static void spin(struct event_base *base) {
        for (int i = 0; i < 20; i++)
                event_base_loop(base, EVLOOP_NONBLOCK);
}

static struct peer *make_pair(struct event_base *base, struct ctx *c, int *ret_other) {
        int sv[2];
        struct peer *p = NULL;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return NULL;
        if (peer_new(base, sv[0], DIR_TO_SUP, &ops, c, &p) < 0)
                return NULL;
        *ret_other = sv[1];
        return p;
}

static void test_frames_and_fds(struct event_base *base) {
        struct ctx c = {};
        _cleanup_close_ int other = -EBADF;
        struct peer *p = make_pair(base, &c, &other);
        int pipefd[2];
        struct frame f = {};

        CHECK(p != NULL, "peer created");
        if (!p)
                return;
        CHECK(pipe2(pipefd, O_CLOEXEC) == 0 && write(pipefd[1], "stored", 6) == 6, "pipe ready");
        close(pipefd[1]);
        CHECK(frame_write_blocking(other, MSG_FD_STORE, 5, &(struct msg_fd_store){.name = "shell"}, &pipefd[0], 1) ==
                      0,
              "worker sends FD_STORE with an fd");
        close(pipefd[0]);
        spin(base);
        CHECK(c.frames == 1 && c.last_type == MSG_FD_STORE, "supervisor side received the frame (%d frames, type %d)",
              c.frames, c.last_type);
        CHECK(streq(c.fd_content, "stored"), "the fd arrived and is readable ('%s')", c.fd_content);

        CHECK(peer_send(p, MSG_CONFIG, 9, &(struct msg_config){.run_id = "r", .json = "{}"}, NULL, 0) == 0,
              "supervisor queues CONFIG");
        CHECK(frame_read_blocking(other, &f, NULL, 0, NULL, NULL) == 0 && f.type == MSG_CONFIG && f.seq == 9,
              "worker reads CONFIG with its seq");
        frame_done(&f);

        CHECK(frame_write_blocking(other, MSG_CONFIG, 1, &(struct msg_config){.run_id = "r", .json = "{}"}, NULL, 0) ==
                      0,
              "worker sends a supervisor-only message");
        spin(base);
        CHECK(c.lost_calls == 1 && c.reason == PEER_LOST_DIRECTION, "wrong direction reported once (%s)", c.detail);
        CHECK(peer_send_ok(p, 1) == -EPIPE, "a lost peer refuses to send");
        peer_kill(p, PEER_LOST_KILLED, "again");
        spin(base);
        CHECK(c.lost_calls == 1, "a second kill does not report again");
        peer_free(p);
}

static void test_garbage(struct event_base *base) {
        struct ctx c = {};
        _cleanup_close_ int other = -EBADF;
        struct peer *p = make_pair(base, &c, &other);

        CHECK(p && write(other, "\xc1garbage", 8) == 8, "garbage written");
        spin(base);
        CHECK(c.lost_calls == 1 && c.reason == PEER_LOST_BAD_FRAME && c.frames == 0, "garbage kills the peer (%s)",
              c.detail);
        peer_free(p);
}

static void test_oversized(struct event_base *base) {
        struct ctx c = {};
        _cleanup_close_ int other = -EBADF;
        struct peer *p = make_pair(base, &c, &other);
        size_t big = FRAME_MAX + 100;
        _cleanup_free_ char *buf = calloc(1, big);
        int sz = 4 * 1024 * 1024;

        (void) setsockopt(other, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        CHECK(p && buf && write(other, buf, big) == (ssize_t) big, "oversized datagram written");
        spin(base);
        CHECK(c.lost_calls == 1 && c.reason == PEER_LOST_BAD_FRAME, "oversized datagram kills the peer (%s)",
              c.detail);
        peer_free(p);
}

static void test_overflow(struct event_base *base) {
        struct ctx c = {};
        _cleanup_close_ int other = -EBADF;
        struct peer *p = make_pair(base, &c, &other);
        uint8_t payload[8192] = {};
        int r = 0, sent = 0;

        peer_set_queue_max(p, 64 * 1024);
        while (sent < 10000) {
                r = peer_send(p, MSG_PONG, 1, &(struct msg_ping){.payload = {payload, sizeof(payload)}}, NULL, 0);
                if (r < 0)
                        break;
                sent++;
        }
        spin(base);
        CHECK(r == -ENOBUFS, "sending to a reader that never reads ends in -ENOBUFS after %d frames", sent);
        CHECK(c.lost_calls == 1 && c.reason == PEER_LOST_OVERFLOW, "overflow reported once (%s)", c.detail);
        peer_free(p);
}

static void test_eof(struct event_base *base) {
        struct ctx c = {};
        int other = -EBADF;
        struct peer *p = make_pair(base, &c, &other);

        close(other);
        spin(base);
        CHECK(c.lost_calls == 1 && c.reason == PEER_LOST_EOF, "EOF reported once (%s)", c.detail);
        peer_free(p);
}

/* A worker that sends its last frame (the script's verdict) and exits while a
 * frame of ours is still unread: the kernel reports ECONNRESET ahead of that
 * last frame, which must still be handled before the loss is reported. */
static void test_last_words(struct event_base *base) {
        struct ctx c = {};
        int other = -EBADF;
        struct peer *p = make_pair(base, &c, &other);

        CHECK(peer_send_ok(p, 3) == 0, "a reply the worker will never read");
        CHECK(frame_write_blocking(other, MSG_S_RESULT, 0,
                                   &(struct msg_s_result){.exit_code = 1, .message = (char *) "x"}, NULL, 0) == 0,
              "the worker's verdict");
        close(other);
        spin(base);
        CHECK(c.frames == 1 && c.last_type == MSG_S_RESULT, "the verdict is handled (%d frames)", c.frames);
        CHECK(c.lost_calls == 1 && c.reason == PEER_LOST_EOF, "then EOF, reported once (%s)", c.detail);
        peer_free(p);
}

/* The worker sent its verdict and exited; before reading it the supervisor
 * sends the worker something: the send finds the other end gone (EPIPE).
 * That is not the loss yet: the verdict is handled first, then the EOF is
 * reported, once; nothing more is written. */
static void test_last_words_after_send(struct event_base *base) {
        struct ctx c = {};
        int other = -EBADF;
        struct peer *p = make_pair(base, &c, &other);

        CHECK(frame_write_blocking(other, MSG_S_RESULT, 0,
                                   &(struct msg_s_result){.exit_code = 1, .message = (char *) "x"}, NULL, 0) == 0,
              "the worker's verdict");
        close(other);
        CHECK(peer_send_ok(p, 4) == -EPIPE, "a send to the gone worker fails");
        CHECK(c.lost_calls == 0, "but the loss is not reported from the send");
        spin(base);
        CHECK(c.frames == 1 && c.last_type == MSG_S_RESULT, "the verdict is handled (%d frames)", c.frames);
        CHECK(c.lost_calls == 1 && c.reason == PEER_LOST_EOF, "then EOF, reported once (%d, %s)", c.lost_calls,
              c.detail);
        CHECK(peer_send_ok(p, 5) == -EPIPE, "and nothing is sent after");
        peer_free(p);
}

/* The same for the blocking reader (script worker threads, test fakes). */
static void test_last_words_blocking(void) {
        struct frame f = {};
        int sv[2], r;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        CHECK(frame_write_blocking(sv[0], MSG_OK, 3, &(struct msg_empty){}, NULL, 0) == 0, "a frame left unread");
        CHECK(frame_write_blocking(sv[1], MSG_S_RESULT, 0,
                                   &(struct msg_s_result){.exit_code = 1, .message = (char *) "x"}, NULL, 0) == 0,
              "the last words");
        close(sv[1]);
        r = frame_read_blocking(sv[0], &f, NULL, 0, NULL, NULL);
        CHECK(r == 0 && f.type == MSG_S_RESULT, "frame_read_blocking() returns them (%s)", strerror(-r));
        frame_done(&f);
        r = frame_read_blocking(sv[0], &f, NULL, 0, NULL, NULL);
        CHECK(r == -EPIPE, "then EOF (%s)", strerror(-r));
        if (r == 0)
                frame_done(&f);
        close(sv[0]);
}

/* A queue that passed the high watermark is congested until the reader has
 * taken it down to the low one; then on_drained fires, once. */
static void test_congestion(struct event_base *base) {
        struct ctx c = {};
        _cleanup_close_ int other = -EBADF;
        struct peer *p = make_pair(base, &c, &other);
        uint8_t payload[64 * 1024] = {}, buf[FRAME_MAX + 1];
        int sent = 0;

        while (!peer_congested(p) && sent < 1000)
                if (peer_send(p, MSG_PONG, 1, &(struct msg_ping){.payload = {payload, sizeof(payload)}}, NULL, 0) >= 0)
                        sent++;
        CHECK(peer_congested(p) && peer_queued_bytes(p) >= 1024 * 1024,
              "a reader that does not read: congested after %d frames (%zu bytes queued)", sent, peer_queued_bytes(p));
        spin(base);
        CHECK(c.drained == 0 && peer_congested(p), "no drain report while nothing is read");
        (void) fd_set_nonblock(other, 1);
        for (int i = 0; i < 10000 && (peer_queued_bytes(p) > 0 || read(other, buf, sizeof buf) > 0); i++) {
                while (read(other, buf, sizeof buf) > 0)
                        ;
                spin(base);
        }
        CHECK(!peer_congested(p) && c.drained == 1, "the reader caught up: drained reported once (%d)", c.drained);
        CHECK(c.lost_calls == 0, "flow control never kills the peer");
        peer_free(p);
}

/* A paused peer leaves frames in the socket; resumed, it reads them all and
 * goes on reading new ones (an event re-added while active used to stay
 * silent forever). */
static void test_pause(struct event_base *base) {
        struct ctx c = {};
        _cleanup_close_ int other = -EBADF;
        struct peer *p = make_pair(base, &c, &other);

        CHECK(peer_pause_read(p, true) == 0 && peer_read_paused(p), "pause");
        for (int i = 0; i < 100; i++)
                (void) frame_write_blocking(other, MSG_PING, 1, &(struct msg_ping){}, NULL, 0);
        spin(base);
        CHECK(c.frames == 0, "nothing read while paused (%d)", c.frames);
        CHECK(peer_pause_read(p, false) == 0 && !peer_read_paused(p), "resume");
        spin(base);
        CHECK(c.frames == 100, "what waited is read after resuming (%d of 100)", c.frames);
        (void) frame_write_blocking(other, MSG_PING, 1, &(struct msg_ping){}, NULL, 0);
        spin(base);
        CHECK(c.frames == 101, "and what comes later too (%d of 101)", c.frames);
        peer_free(p);
}

/* Frames are taken from the socket several at a time: a pause that comes in
 * the middle of such a batch (the supervisor holding a producer whose frame
 * went into a congested queue) must neither lose nor reorder the rest. */
struct batch_ctx {
        struct peer *p;
        uint32_t seqs[32];
        int n, pause_at;
        int fds_read;
};

static int on_frame_pausing(struct peer *p, const struct frame *f, int *fds, size_t n_fds, void *userdata) {
        struct batch_ctx *b = userdata;

        if (b->n < (int) ELEMENTSOF(b->seqs))
                b->seqs[b->n] = f->seq;
        if (++b->n == b->pause_at)
                (void) peer_pause_read(p, true);
        if (n_fds > 0) {
                char x;
                _cleanup_close_ int fd = TAKE_FD(fds[0]);
                b->fds_read += read(fd, &x, 1) == 1;
        }
        return 0;
}

static void lost_ignored(struct peer *p, enum peer_lost_reason reason, const char *detail, void *userdata) {
}

static void test_pause_mid_batch(struct event_base *base) {
        static const struct peer_ops pausing_ops = {.on_frame = on_frame_pausing, .on_lost = lost_ignored};
        struct batch_ctx b = {.pause_at = 2};
        int sv[2], pipefd[2];
        bool in_order = true;

        CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0 &&
                      peer_new(base, sv[0], DIR_TO_SUP, &pausing_ops, &b, &b.p) == 0,
              "peer created");
        CHECK(pipe2(pipefd, O_CLOEXEC) == 0 && write(pipefd[1], "xxxxxxxxxx", 10) == 10, "pipe ready");
        /* Ten frames before the peer reads any: the first batch is taken whole. */
        for (uint32_t i = 1; i <= 10; i++)
                (void) frame_write_blocking(sv[1], MSG_FD_STORE, i, &(struct msg_fd_store){.name = "x"}, &pipefd[0],
                                            1);
        spin(base);
        CHECK(b.n == 2, "paused after the second frame of a batch: no more handled (%d)", b.n);
        CHECK(peer_pause_read(b.p, false) == 0, "resume");
        spin(base);
        for (int i = 0; i < b.n && i < 10; i++)
                in_order = in_order && b.seqs[i] == (uint32_t) i + 1;
        CHECK(b.n == 10 && in_order, "the rest of the batch and the socket follow, in order (%d of 10)", b.n);
        CHECK(b.fds_read == 10, "every frame's fd arrived with it (%d of 10)", b.fds_read);
        b.p = peer_free(b.p);
        safe_close(sv[1]);
        safe_close(pipefd[0]);
        safe_close(pipefd[1]);
}

/* peer_kill() sends what is queued if the socket takes it now: the owner's
 * last word (an ERROR saying why) reaches the peer it kills. */
static void test_kill_flushes(struct event_base *base) {
        struct ctx c = {};
        _cleanup_close_ int other = -EBADF;
        struct peer *p = make_pair(base, &c, &other);
        uint8_t payload[64 * 1024] = {}, buf[FRAME_MAX + 1];
        int got = 0;

        while (peer_queued_bytes(p) == 0)
                (void) peer_send(p, MSG_PONG, 1, &(struct msg_ping){.payload = {payload, sizeof(payload)}}, NULL, 0);
        (void) peer_send_error(p, 7, -EPROTO, "last words");
        (void) fd_set_nonblock(other, 1);
        while (read(other, buf, sizeof buf) > 0) /* room for what is queued, but no event loop ran */
                ;
        peer_kill(p, PEER_LOST_KILLED, "test");
        for (ssize_t n; (n = read(other, buf, sizeof buf)) > 0;) {
                struct frame f = {};
                enum frame_error why;
                if (frame_decode(buf, (size_t) n, &f, &why) == 0) {
                        got += f.type == MSG_ERROR && f.seq == 7;
                        frame_done(&f);
                }
        }
        CHECK(got == 1, "the ERROR queued before peer_kill() reached the other side");
        spin(base);
        CHECK(c.lost_calls == 1 && c.reason == PEER_LOST_KILLED, "and the loss is reported once");
        peer_free(p);
}

int main(void) {
        struct event_base *base = event_base_new();

        test_frames_and_fds(base);
        test_garbage(base);
        test_oversized(base);
        test_overflow(base);
        test_eof(base);
        test_last_words(base);
        test_last_words_after_send(base);
        test_last_words_blocking();
        test_congestion(base);
        test_pause_mid_batch(base);
        test_pause(base);
        test_kill_flushes(base);
        event_base_free(base);
        return tap_done();
}
