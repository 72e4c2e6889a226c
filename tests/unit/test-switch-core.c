/* SPDX-License-Identifier: MIT */
/*
 * Proves the switch's decisions: learning sends unicast to one port and
 * floods the rest, fault rules pick the most specific match and produce
 * loss/duplication at the configured rates, and the VDE request parser
 * accepts what libvdeplug sends and refuses malformed handshakes: every
 * guest frame in a test run passes through these few functions.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include "macro.h"
#include "switch-core.h"
#include "tap.h"

static void frame(uint8_t *f, const uint8_t *dst, const uint8_t *src) {
        memset(f, 0, 60);
        memcpy(f, dst, 6);
        memcpy(f + 6, src, 6);
}

static void test_learning(void) {
        static struct mac_table t;
        bool up[4] = {true, true, true, false};
        const uint8_t a[6] = {0x52, 0x54, 0, 0x12, 1, 1}, b[6] = {0x52, 0x54, 0, 0x12, 1, 2};
        const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        uint8_t f[60];
        int out[4];
        size_t n;

        frame(f, b, a);
        n = mac_table_forward(&t, 0, f, sizeof(f), 1000, up, 4, out);
        CHECK(n == 2 && out[0] == 1 && out[1] == 2, "unknown destination floods to the other live ports");
        frame(f, a, b);
        n = mac_table_forward(&t, 1, f, sizeof(f), 2000, up, 4, out);
        CHECK(n == 1 && out[0] == 0, "learned destination goes to one port");
        frame(f, b, a);
        n = mac_table_forward(&t, 0, f, sizeof(f), 3000, up, 4, out);
        CHECK(n == 1 && out[0] == 1, "both directions learned");
        frame(f, bcast, a);
        n = mac_table_forward(&t, 0, f, sizeof(f), 4000, up, 4, out);
        CHECK(n == 2, "broadcast floods");
        frame(f, b, a);
        n = mac_table_forward(&t, 0, f, sizeof(f), 4000 + SWITCH_MAC_AGE_USEC + 5000, up, 4, out);
        CHECK(n == 2, "aged entries are forgotten");
        CHECK(mac_table_forward(&t, 0, f, 10, 5000, up, 4, out) == 0, "runt frame goes nowhere");
        mac_table_forget_port(&t, 1);
        frame(f, b, a);
        n = mac_table_forward(&t, 0, f, sizeof(f), 6000, up, 4, out);
        CHECK(n == 2, "a closed port's MACs are forgotten");
}

static void test_rules(void) {
        static struct link_rules r;
        struct link_rule rule = {};
        struct link_verdict v;
        int dropped = 0, dup = 0;

        link_rules_init(&r, 42);
        v = link_rules_decide(&r, "a", "b");
        CHECK(v.copies == 1 && v.delay_us == 0, "no rules: frame passes untouched");

        snprintf(rule.from, sizeof(rule.from), "a");
        snprintf(rule.to, sizeof(rule.to), "b");
        rule.drop = true;
        CHECK(link_rules_set(&r, &rule) == 0, "block a->b");
        CHECK(link_rules_decide(&r, "a", "b").copies == 0, "a->b dropped");
        CHECK(link_rules_decide(&r, "b", "a").copies == 1, "b->a untouched (rules are directional)");

        rule = (struct link_rule){.delay_us = 50000};
        snprintf(rule.from, sizeof(rule.from), "a");
        CHECK(link_rules_set(&r, &rule) == 0, "delay everything from a");
        CHECK(link_rules_decide(&r, "a", "b").copies == 0, "the exact pair beats the wildcard");
        v = link_rules_decide(&r, "a", "c");
        CHECK(v.copies == 1 && v.delay_us == 50000, "a->c delayed by the wildcard rule");

        CHECK(link_rules_clear(&r, "a", "b") == 1, "clear the pair");
        CHECK(link_rules_decide(&r, "a", "b").delay_us == 50000, "wildcard applies once the pair is gone");
        CHECK(link_rules_clear(&r, "", "") == 1 && r.n == 0, "clear all");

        rule = (struct link_rule){.loss_ppm = 250000, .dup_ppm = 100000};
        CHECK(link_rules_set(&r, &rule) == 0, "25%% loss, 10%% duplication everywhere");
        for (int i = 0; i < 20000; i++) {
                v = link_rules_decide(&r, "x", "y");
                dropped += v.copies == 0;
                dup += v.copies == 2;
        }
        CHECK(dropped > 4500 && dropped < 5500, "loss rate near 25%% (%d of 20000)", dropped);
        CHECK(dup > 1200 && dup < 1800, "duplication near 10%% of survivors (%d)", dup);
        rule.loss_ppm = 2000000;
        CHECK(link_rules_set(&r, &rule) == -EINVAL, "a probability above 1 is refused");
}

static size_t vde_req(uint8_t *buf, uint32_t magic, uint32_t version, uint32_t type, const char *path, const char *d) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        size_t n = 0;

        memcpy(buf + n, &magic, 4);
        n += 4;
        memcpy(buf + n, &version, 4);
        n += 4;
        memcpy(buf + n, &type, 4);
        n += 4;
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
        memcpy(buf + n, &sun, sizeof(sun));
        n += sizeof(sun);
        memcpy(buf + n, d, strlen(d));
        return n + strlen(d);
}

static void test_vde(void) {
        uint8_t buf[512];
        struct vde_request r;
        size_t n;

        CHECK(sizeof(struct sockaddr_un) == 110, "sockaddr_un is 110 bytes as libvdeplug assumes");
        n = vde_req(buf, VDE_SWITCH_MAGIC, 3, 0, "/tmp/v/vde1.ctl/.01234-00000", "qemu user=root PID=1234");
        CHECK(vde_request_parse(buf, n, &r) == 0 && streq(r.path, "/tmp/v/vde1.ctl/.01234-00000") &&
                      streq(r.description, "qemu user=root PID=1234") && r.port == 0,
              "libvdeplug's request parses");
        n = vde_req(buf, VDE_SWITCH_MAGIC, 3, 5u << 8, "/x", "");
        CHECK(vde_request_parse(buf, n, &r) == 0 && r.port == 5, "requested port number");
        n = vde_req(buf, 0xdeadbeef, 3, 0, "/x", "");
        CHECK(vde_request_parse(buf, n, &r) == -EBADMSG, "wrong magic refused");
        n = vde_req(buf, VDE_SWITCH_MAGIC, 2, 0, "/x", "");
        CHECK(vde_request_parse(buf, n, &r) == -EBADMSG, "old protocol version refused");
        n = vde_req(buf, VDE_SWITCH_MAGIC, 3, 0, "relative", "");
        CHECK(vde_request_parse(buf, n, &r) == -EBADMSG, "relative data path refused");
        n = vde_req(buf, VDE_SWITCH_MAGIC, 3, 7, "/x", "");
        CHECK(vde_request_parse(buf, n, &r) == -EBADMSG, "unknown request type refused");
        CHECK(vde_request_parse(buf, 40, &r) == -EBADMSG, "short request refused");
        memset(buf, 'A', sizeof(buf));
        CHECK(vde_request_parse(buf, sizeof(buf), &r) == -EBADMSG, "garbage refused");
}

static void test_tap(void) {
        uint64_t total = 0;
        unsigned n = 0;
        bool capped = true;

        CHECK(tap_name_valid("vg1n3") && tap_name_valid("vg255n255") && tap_name_valid("abcdefghijklmno"),
              "vigil's TAP names and 15-byte names are valid");
        CHECK(!tap_name_valid("") && !tap_name_valid("abcdefghijklmnop") && !tap_name_valid("a/b") &&
                      !tap_name_valid("a b") && !tap_name_valid("a:1") && !tap_name_valid(".") &&
                      !tap_name_valid("..") && !tap_name_valid("a\nb"),
              "empty, long, '/', ':', blank, '.' and '..' names are refused");
        CHECK(tap_retry_delay_usec(0) == 10 * USEC_PER_MSEC && tap_retry_delay_usec(1) == 20 * USEC_PER_MSEC,
              "the first re-creation attempts come quickly");
        for (uint64_t d; (d = tap_retry_delay_usec(n)); n++) {
                capped = capped && d <= 2 * USEC_PER_SEC;
                total += d;
        }
        CHECK(capped, "retry delays are capped at 2 s");
        CHECK(n == SWITCH_TAP_RETRY_MAX && total > 60 * USEC_PER_SEC && total < 300 * USEC_PER_SEC,
              "re-creation gives up after a bounded number of attempts (1-5 minutes)");
}

static void test_pcap(void) {
        uint8_t h[PCAP_FILE_HEADER_LEN], r[PCAP_RECORD_HEADER_LEN];

        pcap_file_header(h);
        CHECK(h[0] == 0xd4 && h[1] == 0xc3 && h[2] == 0xb2 && h[3] == 0xa1 && h[20] == 1, "pcap magic and linktype");
        pcap_record_header(r, 1700000000123456ULL, 60);
        CHECK(r[8] == 60 && r[12] == 60 && r[4] == (uint8_t) (123456 & 0xff), "record lengths and microseconds");
        CHECK(pcap_record_span(r, 76) == 76 && pcap_record_span(r, 1000) == 76, "a whole record spans header + frame");
        CHECK(pcap_record_span(r, 75) == 0, "a record cut short is not whole");
        pcap_record_header(r, 1700000000123456ULL, SWITCH_FRAME_MAX + 1);
        CHECK(pcap_record_span(r, 1 << 20) == 0, "a record longer than any frame is not ours");
        memset(r, 0xab, sizeof(r));
        CHECK(pcap_record_span(r, 1 << 20) == 0, "garbage is not a record");
}

/* A 26-node fleet split 13|13 needs 338 directed rules; the table holds a 32|32 split. */
static void test_rule_capacity(void) {
        static struct link_rules r;
        struct link_rule rule = {.drop = true};
        int ok = 0;

        for (int i = 0; i < SWITCH_RULES_MAX; i++) {
                snprintf(rule.from, sizeof(rule.from), "m%d", i / 64);
                snprintf(rule.to, sizeof(rule.to), "n%d", i % 64);
                ok += link_rules_set(&r, &rule) == 0;
        }
        CHECK(ok == SWITCH_RULES_MAX && SWITCH_RULES_MAX >= 2 * 32 * 32, "%d distinct rules fit", ok);
        snprintf(rule.from, sizeof(rule.from), "extra");
        CHECK(link_rules_set(&r, &rule) == -ENOSPC, "one more distinct rule is refused with -ENOSPC");
        snprintf(rule.from, sizeof(rule.from), "m0");
        snprintf(rule.to, sizeof(rule.to), "n0");
        rule.loss_ppm = 5;
        CHECK(link_rules_set(&r, &rule) == 0, "updating an existing rule still works when full");
}

int main(void) {
        test_learning();
        test_rule_capacity();
        test_rules();
        test_vde();
        test_pcap();
        test_tap();
        return tap_done();
}
