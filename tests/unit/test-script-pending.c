/* SPDX-License-Identifier: MIT */
/*
 * test-script-pending: the script worker's table of in-flight requests.
 * Replies are real encoded-then-decoded frames: chunks accumulate per seq,
 * the final frame completes exactly its request, the byte cap cuts and
 * flags an endless reply, abandoned requests are dropped when their reply
 * comes, unknown seqs and non-replies are refused, and losing the
 * supervisor completes every waiter with the error. For the brokered
 * channels: a replayed request starts from no data, a request its channel
 * took down fails alone with its reason, and the fd of a CHANNEL reply goes
 * to its request or stays with the caller, never leaked.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "macro.h"
#include "script-pending.h"
#include "tap.h"

static struct frame mk(int type, uint32_t seq, const void *body) {
        _cleanup_free_ uint8_t *buf = NULL;
        struct frame f = {};
        size_t len;

        if (frame_encode(type, seq, body, &buf, &len) < 0 || frame_decode(buf, len, &f, NULL) < 0)
                abort();
        return f;
}

static struct frame chunk(uint32_t seq, const char *s) {
        return mk(MSG_CHUNK, seq, &(struct msg_chunk){.data = {(uint8_t *) s, strlen(s)}});
}

static void test_replies(void) {
        struct script_pending_table t;
        struct script_pending *a, *b, *c;
        enum script_deliver what;
        struct frame f;
        int r;

        script_pending_table_init(&t, 10);
        CHECK(script_pending_add(&t, 1, &a) == 0, "add seq 1");
        CHECK(script_pending_add(&t, 2, &b) == 0, "add seq 2");
        CHECK(script_pending_add(&t, 1, &c) == -EEXIST, "seq 1 twice is refused");
        CHECK(script_pending_add(&t, 0, &c) == -EEXIST, "seq 0 (events) is refused");

        f = chunk(1, "hello ");
        CHECK(script_pending_deliver(&t, &f, &what) == 0 && what == SCRIPT_DELIVER_PART, "chunk for 1");
        CHECK(f.body == NULL, "the table took the chunk frame");
        f = chunk(2, "other");
        CHECK(script_pending_deliver(&t, &f, &what) == 0 && what == SCRIPT_DELIVER_PART, "chunk for 2");
        f = chunk(1, "you");
        CHECK(script_pending_deliver(&t, &f, &what) == 0, "second chunk for 1");
        CHECK(a->len == 9 && memcmp(a->data, "hello you", 9) == 0 && !a->overflow, "chunks of 1 in order");
        CHECK(b->len == 5 && memcmp(b->data, "other", 5) == 0, "chunks of 2 kept apart");
        CHECK(!a->done && !b->done, "nothing complete yet");

        f = mk(MSG_M_EXEC_RESULT, 1, &(struct msg_m_exec_result){.status = 3, .length = 9});
        CHECK(script_pending_deliver(&t, &f, &what) == 0 && what == SCRIPT_DELIVER_FINAL, "final completes 1");
        CHECK(a->done && a->error == 0 && a->final.type == MSG_M_EXEC_RESULT &&
                      ((struct msg_m_exec_result *) a->final.body)->status == 3,
              "final frame stored with its body");
        CHECK(!b->done, "2 still waiting");
        f = chunk(1, "late");
        r = script_pending_deliver(&t, &f, &what);
        CHECK(r == -ENOENT, "a chunk after the final is refused");
        frame_done(&f);
        script_pending_remove(&t, a);

        /* the cap: 10 bytes, "other" already there */
        f = chunk(2, "0123456789");
        CHECK(script_pending_deliver(&t, &f, &what) == 0, "chunk beyond the cap accepted");
        CHECK(b->overflow && b->len == 10 && memcmp(b->data, "other01234", 10) == 0, "cut at the cap and flagged");
        f = chunk(2, "more");
        CHECK(script_pending_deliver(&t, &f, &what) == 0 && b->len == 10, "later chunks dropped");
        f = mk(MSG_ERROR, 2, &(struct msg_error){.code = -EIO, .message = (char *) "boom"});
        CHECK(script_pending_deliver(&t, &f, &what) == 0 && what == SCRIPT_DELIVER_FINAL && b->final.type == MSG_ERROR,
              "MSG_ERROR is a final reply");
        script_pending_remove(&t, b);
        CHECK(t.n == 0 && t.head == NULL, "table empty after removals");

        /* abandon: the waiter gave up (Ctrl-C) */
        CHECK(script_pending_add(&t, 7, &c) == 0, "add seq 7");
        script_pending_abandon(&t, c);
        CHECK(t.n == 1, "abandoned but still in the table");
        f = chunk(7, "x");
        CHECK(script_pending_deliver(&t, &f, &what) == 0 && what == SCRIPT_DELIVER_DROPPED, "its chunk is dropped");
        f = mk(MSG_OK, 7, &(struct msg_empty){});
        CHECK(script_pending_deliver(&t, &f, &what) == 0 && what == SCRIPT_DELIVER_DROPPED && t.n == 0,
              "its final frees it");

        /* non-replies and unknown seqs */
        f = mk(MSG_PING, 9, &(struct msg_ping){});
        CHECK(script_pending_deliver(&t, &f, &what) == -EBADMSG, "PING is not a reply");
        frame_done(&f);
        f = mk(MSG_OK, 42, &(struct msg_empty){});
        CHECK(script_pending_deliver(&t, &f, &what) == -ENOENT, "unknown seq");
        frame_done(&f);

        /* losing the supervisor */
        CHECK(script_pending_add(&t, 11, &a) == 0 && script_pending_add(&t, 12, &b) == 0 &&
                      script_pending_add(&t, 13, &c) == 0,
              "three waiters");
        script_pending_abandon(&t, c);
        script_pending_fail_all(&t, -EPIPE);
        CHECK(a->done && a->error == -EPIPE && b->done && b->error == -EPIPE, "every waiter completes with -EPIPE");
        CHECK(t.n == 2, "the abandoned one is gone");
        script_pending_table_done(&t);
        CHECK(t.n == 0, "table freed");
}

static struct frame channel_reply(uint32_t seq) {
        return mk(MSG_CHANNEL, seq, &(struct msg_channel){.peer = (char *) "server", .kind = (char *) "machine"});
}

static size_t fds_open(void) {
        DIR *d = opendir("/proc/self/fd");
        size_t n = 0;

        if (!d)
                abort();
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

/* A request replayed after its direct channel died must not carry the bytes
 * the dead channel had delivered: the replay sends them all again. */
static void test_restart(void) {
        struct script_pending_table t;
        struct script_pending *a, *b;
        enum script_deliver what;
        struct frame f;

        script_pending_table_init(&t, 10);
        CHECK(script_pending_add(&t, 20, &a) == 0 && script_pending_add(&t, 21, &b) == 0, "two requests");
        f = chunk(20, "half");
        CHECK(script_pending_deliver(&t, &f, &what) == 0 && a->len == 4, "part of the reply came");
        f = chunk(21, "keep");
        CHECK(script_pending_deliver(&t, &f, &what) == 0, "the other request has a part too");
        script_pending_restart(a);
        CHECK(a->len == 0 && !a->overflow, "restart forgets the part");
        CHECK(!a->done && !a->abandoned && a->error == 0 && a->failed == 0 && t.n == 2,
              "and leaves the request waiting");
        CHECK(b->len == 4 && memcmp(b->data, "keep", 4) == 0, "the other request keeps its part");
        f = chunk(20, "whole");
        CHECK(script_pending_deliver(&t, &f, &what) == 0 && what == SCRIPT_DELIVER_PART, "the replay's chunk");
        f = mk(MSG_M_EXEC_RESULT, 20, &(struct msg_m_exec_result){.length = 5});
        CHECK(script_pending_deliver(&t, &f, &what) == 0 && what == SCRIPT_DELIVER_FINAL, "the replay's final");
        CHECK(a->len == 5 && memcmp(a->data, "whole", 5) == 0, "the waiter sees the replay's bytes only");

        /* a reply cut at the cap: the replay gets the whole cap again */
        f = chunk(21, "0123456789");
        CHECK(script_pending_deliver(&t, &f, &what) == 0 && b->overflow && b->len == 10, "over the cap");
        script_pending_restart(b);
        CHECK(b->len == 0 && !b->overflow, "restart clears the overflow");
        f = chunk(21, "abcdefgh");
        CHECK(script_pending_deliver(&t, &f, &what) == 0 && b->len == 8 && !b->overflow &&
                      memcmp(b->data, "abcdefgh", 8) == 0,
              "the replay's bytes are kept up to the cap");
        script_pending_table_done(&t);
}

/* A request its channel took down fails with the reason (the waiter then
 * raises it like a remote error); nothing else in the table changes. */
static void test_fail(void) {
        struct script_pending_table t;
        struct script_pending *a, *b, *c;
        enum script_deliver what;
        char reason[] = "machine 'server' worker restarted";
        struct frame f;

        script_pending_table_init(&t, 10);
        CHECK(script_pending_add(&t, 30, &a) == 0 && script_pending_add(&t, 31, &b) == 0, "two requests");
        f = chunk(31, "part");
        CHECK(script_pending_deliver(&t, &f, &what) == 0, "one has a part of its reply");
        script_pending_fail(&t, a, -ECONNRESET, reason);
        reason[0] = 'X';
        CHECK(a->done && a->failed == -ECONNRESET && a->error == 0, "fail completes the request with the code");
        CHECK(a->failed_message && streq(a->failed_message, "machine 'server' worker restarted"),
              "with its own copy of the message");
        CHECK(!b->done && b->failed == 0 && !b->failed_message && b->len == 4 && t.n == 2, "the other is untouched");

        f = mk(MSG_OK, 30, &(struct msg_empty){});
        CHECK(script_pending_deliver(&t, &f, &what) == -ENOENT, "a late reply to the failed request is refused");
        frame_done(&f);
        CHECK(a->final.body == NULL && a->failed == -ECONNRESET, "and does not replace the failure");
        script_pending_fail(&t, a, -ENOMEM, "second");
        CHECK(a->failed == -ECONNRESET && streq(a->failed_message, "machine 'server' worker restarted"),
              "failing a settled request changes nothing");

        script_pending_fail(&t, b, 5, "positive");
        CHECK(b->done && b->failed == -EIO, "a positive code fails as -EIO");
        script_pending_remove(&t, b);
        CHECK(script_pending_add(&t, 32, &b) == 0, "add seq 32");
        script_pending_fail(&t, b, 0, "zero");
        CHECK(b->done && b->failed == -EIO, "so does 0: a failed request never looks successful");

        CHECK(script_pending_add(&t, 33, &c) == 0, "add seq 33");
        script_pending_abandon(&t, c);
        script_pending_fail(&t, c, -ECONNRESET, "nobody waits");
        CHECK(t.n == 2 && t.head != c && t.head->next != c, "failing an abandoned request frees it");
        script_pending_table_done(&t);
}

/* The fd of a CHANNEL reply belongs to its request; one nobody waits for stays
 * with the caller, who closes it. Either way no fd outlives the table. */
static void test_deliver_fd(void) {
        struct script_pending_table t;
        struct script_pending *a, *b, *c;
        enum script_deliver what;
        size_t before = fds_open();
        struct frame f;
        int fd, kept;

        script_pending_table_init(&t, 10);
        CHECK(script_pending_add(&t, 40, &a) == 0 && script_pending_add(&t, 41, &b) == 0, "two requests");
        fd = kept = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0, "an fd to hand over");
        f = channel_reply(41);
        CHECK(script_pending_deliver_fd(&t, &f, &fd, &what) == 0 && what == SCRIPT_DELIVER_FINAL,
              "CHANNEL completes its request");
        CHECK(b->fd == kept && fd == -EBADF, "which takes the fd, by seq");
        CHECK(a->fd < 0 && !a->done, "the other request gets nothing");

        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        kept = fd;
        f = channel_reply(41);
        CHECK(script_pending_deliver_fd(&t, &f, &fd, &what) == -ENOENT,
              "a second CHANNEL for a settled seq is refused");
        CHECK(fd == kept && fcntl(fd, F_GETFD) >= 0 && b->fd != fd, "its fd stays with the caller, open");
        frame_done(&f);
        f = channel_reply(99);
        CHECK(script_pending_deliver_fd(&t, &f, &fd, &what) == -ENOENT, "CHANNEL for an unknown seq is refused");
        CHECK(fd == kept && fcntl(fd, F_GETFD) >= 0, "its fd stays with the caller, open");
        frame_done(&f);
        f = chunk(40, "x");
        CHECK(script_pending_deliver_fd(&t, &f, &fd, &what) == 0 && what == SCRIPT_DELIVER_PART,
              "a chunk with an fd is delivered");
        CHECK(fd == kept && a->fd < 0, "without taking the fd: only a final frame does");
        f = mk(MSG_PING, 40, &(struct msg_ping){});
        CHECK(script_pending_deliver_fd(&t, &f, &fd, &what) == -EBADMSG && fd == kept, "a non-reply leaves the fd");
        frame_done(&f);

        CHECK(script_pending_add(&t, 42, &c) == 0, "add seq 42");
        script_pending_abandon(&t, c);
        f = channel_reply(42);
        CHECK(script_pending_deliver_fd(&t, &f, &fd, &what) == 0 && what == SCRIPT_DELIVER_DROPPED && fd == -EBADF &&
                      t.n == 2,
              "an abandoned request takes its fd and is freed with it");
        CHECK(fds_open() == before + 1, "its fd is closed (only the taken one is open)");

        script_pending_remove(&t, b);
        CHECK(fds_open() == before, "removing the request closes its fd");
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        f = channel_reply(40);
        CHECK(script_pending_deliver_fd(&t, &f, &fd, &what) == 0 && a->fd >= 0 && fd == -EBADF, "another one taken");
        script_pending_table_done(&t);
        CHECK(fds_open() == before, "freeing the table closes it");
}

int main(void) {
        test_replies();
        test_restart();
        test_fail();
        test_deliver_fd();
        return tap_done();
}
