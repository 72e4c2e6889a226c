/* SPDX-License-Identifier: MIT */
/*
 * test-script-pending: the script worker's table of in-flight requests.
 * Replies are real encoded-then-decoded frames: chunks accumulate per seq,
 * the final frame completes exactly its request, the byte cap cuts and
 * flags an endless reply, abandoned requests are dropped when their reply
 * comes, unknown seqs and non-replies are refused, and losing the
 * supervisor completes every waiter with the error.
 */
#include <errno.h>
#include <string.h>

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

int main(void) {
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
        return tap_done();
}
