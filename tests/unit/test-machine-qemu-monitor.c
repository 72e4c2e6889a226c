/* SPDX-License-Identifier: MIT */
/*
 * test-machine-qemu-monitor: HMP prompt framing (greeting, echo, prompt split
 * across reads, cap) and QMP line framing/classification (results, events,
 * errors, garbage, overlong lines).
 */
#include "macro.h"
#include "qemu-hmp.h"
#include "qemu-qmp.h"
#include "tap.h"

static void test_hmp(void) {
        struct qemu_hmp_reply h;
        size_t n;

        qemu_hmp_reply_init(&h, 64);
        qemu_hmp_reply_append(&h, "QEMU 7.2.22 monitor - type 'help' for more information\r\n(qemu", 61);
        CHECK(!qemu_hmp_reply_complete(&h), "hmp: prompt split across reads is not complete");
        qemu_hmp_reply_append(&h, ") ", 2);
        CHECK(qemu_hmp_reply_complete(&h), "hmp: greeting complete at the prompt");
        char *t = qemu_hmp_reply_take(&h, &n);
        CHECK(n == 63 && h.len == 0, "hmp: take hands over the text");
        free(t);
        CHECK(qemu_hmp_reply_append(&h, "x", 1) == 0 && !qemu_hmp_reply_complete(&h), "hmp: no prompt, not complete");
        char big[100] = {};
        CHECK(qemu_hmp_reply_append(&h, big, sizeof big) == -E2BIG, "hmp: cap enforced");
        qemu_hmp_reply_done(&h);
}

static void test_qmp(void) {
        struct qemu_qmp_reader q;
        const char *s = "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n{\"return\": {}}\n{\"event\": \"STOP\"}"
                        "\n{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"x\"}}\n";
        size_t off = 0, used;
        char *line;
        enum qemu_qmp_kind kinds[8];
        size_t n = 0;

        qemu_qmp_reader_init(&q, 0);
        while (off < strlen(s)) {
                int r = qemu_qmp_reader_feed(&q, (const uint8_t *) s + off, MIN((size_t) 5, strlen(s) - off), &used,
                                             &line);
                off += used;
                if (r == 1) {
                        json_object *o;
                        if (qemu_qmp_classify(line, &kinds[n], &o) == 0) {
                                json_object_put(o);
                                n++;
                        }
                        free(line);
                }
        }
        CHECK(n == 4 && kinds[0] == QEMU_QMP_RESULT && kinds[1] == QEMU_QMP_RESULT && kinds[2] == QEMU_QMP_EVENT &&
                      kinds[3] == QEMU_QMP_ERROR,
              "qmp: greeting, return, event, error classified across 5-byte reads");
        qemu_qmp_reader_done(&q);

        json_object *o;
        enum qemu_qmp_kind k;
        CHECK(qemu_qmp_classify("not json", &k, &o) == -EBADMSG, "qmp: garbage refused");
        CHECK(qemu_qmp_classify("[1,2]", &k, &o) == -EBADMSG, "qmp: non-object refused");
        CHECK(qemu_qmp_classify("{\"return\":{}} {}", &k, &o) == -EBADMSG, "qmp: trailing data refused");
        CHECK(qemu_qmp_classify("{\"return\":{}}  ", &k, &o) == 0 && k == QEMU_QMP_RESULT, "qmp: trailing space ok");
        json_object_put(o);

        qemu_qmp_reader_init(&q, 10);
        CHECK(qemu_qmp_reader_feed(&q, (const uint8_t *) "0123456789ABC", 13, &used, &line) == -E2BIG,
              "qmp: overlong line reported");
        CHECK(qemu_qmp_reader_feed(&q, (const uint8_t *) "DEF\n{}\n", 7, &used, &line) == 0 && used == 4,
              "qmp: rest of the overlong line skipped");
        CHECK(qemu_qmp_reader_feed(&q, (const uint8_t *) "{}\n", 3, &used, &line) == 1 && streq(line, "{}"),
              "qmp: next line read normally");
        free(line);
        qemu_qmp_reader_done(&q);
}

int main(void) {
        test_hmp();
        test_qmp();
        return tap_done();
}
