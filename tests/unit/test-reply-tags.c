/* SPDX-License-Identifier: MIT */
/*
 * test-reply-tags: the tags a worker gives requests from direct clients never
 * collide with the supervisor's routed seqs nor with each other (also across
 * the wrap at UINT32_MAX), resolve to the client and seq that asked, and go
 * when answered or when their client leaves. A collision would hand one
 * client's command output to another request.
 */
#include <errno.h>

#include "msg.h"
#include "reply-tags.h"
#include "tap.h"

int main(void) {
        struct reply_tags t = {};
        int a, b;
        uint32_t t1, t2, t3, x;
        const struct reply_tag *e;

        CHECK(!reply_tag_is_direct(1) && !reply_tag_is_direct(ROUTE_SEQ_DIRECT - 1), "routed seqs are not tags");
        CHECK(reply_tag_is_direct(ROUTE_SEQ_DIRECT) && reply_tag_is_direct(UINT32_MAX), "the upper half is");

        CHECK(reply_tags_add(&t, &a, 7, &t1) == 0 && reply_tag_is_direct(t1), "a tag for a's seq 7");
        CHECK(reply_tags_add(&t, &b, 7, &t2) == 0 && t2 != t1, "b's seq 7 gets another tag");
        CHECK(reply_tags_add(&t, &a, 8, &t3) == 0 && t3 != t1 && t3 != t2, "a's seq 8 a third");
        e = reply_tags_find(&t, t2);
        CHECK(e && e->owner == &b && e->seq == 7, "a tag resolves to its client and seq");
        CHECK(!reply_tags_find(&t, 7) && !reply_tags_find(&t, ROUTE_SEQ_DIRECT + 1000),
              "unknown tags resolve to nothing");

        reply_tags_drop(&t, t1);
        CHECK(!reply_tags_find(&t, t1) && reply_tags_find(&t, t3), "an answered tag goes, the others stay");
        CHECK(reply_tags_drop_owner(&t, &a) == 1 && !reply_tags_find(&t, t3) && reply_tags_find(&t, t2),
              "a client leaving drops its tags only");

        /* Near the top: the next tags wrap to ROUTE_SEQ_DIRECT, skipping one in use. */
        reply_tags_done(&t);
        t.next = UINT32_MAX;
        CHECK(reply_tags_add(&t, &a, 1, &t1) == 0 && t1 == UINT32_MAX, "the last tag");
        CHECK(reply_tags_add(&t, &a, 2, &t2) == 0 && t2 == ROUTE_SEQ_DIRECT, "then the first again, never 0..2^31");
        t.next = ROUTE_SEQ_DIRECT;
        CHECK(reply_tags_add(&t, &a, 3, &t3) == 0 && t3 == ROUTE_SEQ_DIRECT + 1, "a tag in use is skipped");

        /* The cap: a client flooding requests gets -EBUSY, not unbounded memory. */
        int r = 0;
        for (int i = 0; i < 5000 && r == 0; i++)
                r = reply_tags_add(&t, &b, (uint32_t) i + 10, &x);
        CHECK(r == -EBUSY && t.n == 4096, "at most 4096 requests in flight (%zu)", t.n);
        CHECK(reply_tags_drop_owner(&t, &b) == 4093 && t.n == 3, "all of b's dropped at once");
        reply_tags_done(&t);
        CHECK(t.n == 0 && !t.v, "done frees the table");
        return tap_done();
}
