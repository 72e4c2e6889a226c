/* SPDX-License-Identifier: MIT */
/*
 * test-machine-console-log: serial line cleaning exactly like the reference
 * (invalid UTF-8 dropped, \r removed, trailing whitespace stripped), line
 * caps, the bounded ring with absolute indices and gaps, and the journal
 * rate limit.
 */
#include <stdio.h>

#include "console-log.h"
#include "macro.h"
#include "tap.h"

static bool clean_is(const char *in, size_t len, const char *want) {
        char buf[256];
        memcpy(buf, in, len);
        size_t n = console_clean_line(buf, len);
        return n == strlen(want) && memcmp(buf, want, n) == 0;
}

struct collect {
        char lines[16][64];
        size_t lens[16];
        size_t n;
};

static int collect_line(const char *line, size_t len, void *userdata) {
        struct collect *c = userdata;
        if (c->n < 16) {
                memcpy(c->lines[c->n], line, MIN(len, (size_t) 63));
                c->lines[c->n][MIN(len, (size_t) 63)] = 0;
                c->lens[c->n] = len;
        }
        c->n++;
        return 0;
}

static void test_clean(void) {
        CHECK(clean_is("hello\r", 6, "hello"), "clean: trailing \\r removed");
        CHECK(clean_is("a\rb\r\rc", 6, "abc"), "clean: every \\r removed");
        CHECK(clean_is("  x \t \v\f", 8, "  x"), "clean: trailing whitespace stripped, leading kept");
        CHECK(clean_is("ok\xff\xfe!", 5, "ok!"), "clean: invalid bytes dropped");
        CHECK(clean_is("\xc3\xa9t\xc3\xa9", 5, "\xc3\xa9t\xc3\xa9"), "clean: valid UTF-8 kept");
        CHECK(clean_is("x\xe2\x82", 3, "x"), "clean: truncated sequence dropped");
        CHECK(clean_is("x\xe2\x82y", 4, "xy"), "clean: broken sequence dropped, next byte kept");
        CHECK(clean_is("\xc0\xaf\xed\xa0\x80z", 6, "z"), "clean: overlong and surrogate dropped");
        CHECK(clean_is("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"), "clean: 4-byte emoji kept");
        CHECK(clean_is("a\xc2\xa0\xe3\x80\x80\x1f", 7, "a"), "clean: unicode whitespace stripped like str.rstrip");
        CHECK(clean_is("\x1b[0m", 4, "\x1b[0m"), "clean: escape codes kept");
}

static void test_split(void) {
        struct console_splitter s;
        struct collect c = {};

        console_splitter_init(&s, 8);
        const char *in = "one\r\ntw";
        console_splitter_feed(&s, (const uint8_t *) in, strlen(in), collect_line, &c);
        console_splitter_feed(&s, (const uint8_t *) "o\n\nthree ", 9, collect_line, &c);
        CHECK(c.n == 3 && streq(c.lines[0], "one") && streq(c.lines[1], "two") && streq(c.lines[2], ""),
              "split: lines across chunks, empty line kept");
        console_splitter_finish(&s, collect_line, &c);
        CHECK(c.n == 4 && streq(c.lines[3], "three"), "split: unfinished last line emitted at EOF");
        c.n = 0;
        console_splitter_feed(&s, (const uint8_t *) "0123456789abcdefXY\n", 19, collect_line, &c);
        CHECK(c.n == 3 && streq(c.lines[0], "01234567") && streq(c.lines[1], "89abcdef") && streq(c.lines[2], "XY"),
              "split: overlong line cut at the cap");
        console_splitter_done(&s);
}

static void test_ring(void) {
        struct console_ring r;
        char *t;
        size_t n;
        uint64_t first, next;
        char line[32];

        console_ring_init(&r, 4, 1000);
        for (int i = 0; i < 6; i++) {
                snprintf(line, sizeof line, "line%d", i);
                console_ring_push(&r, line, strlen(line));
        }
        CHECK(console_ring_end(&r) == 6 && r.first == 2 && r.count == 4, "ring: keeps the last 4 of 6");
        console_ring_read(&r, 0, 1 << 20, &t, &n, &first, &next);
        CHECK(first == 2 && next == 6 && streq(t, "line2\nline3\nline4\nline5\n") && n == strlen(t),
              "ring: read from a lost index reports the gap via first");
        free(t);
        console_ring_read(&r, 4, 1 << 20, &t, &n, &first, &next);
        CHECK(first == 4 && next == 6 && streq(t, "line4\nline5\n"), "ring: read from the middle");
        free(t);
        console_ring_read(&r, 6, 1 << 20, &t, &n, &first, &next);
        CHECK(next == 6 && n == 0 && streq(t, ""), "ring: read at the end is empty");
        free(t);
        console_ring_read(&r, 99, 1 << 20, &t, &n, &first, &next);
        CHECK(next == 6 && n == 0, "ring: read past the end is empty, next stays at the end");
        free(t);
        console_ring_read(&r, 2, 7, &t, &n, &first, &next);
        CHECK(next == 3 && streq(t, "line2\n"), "ring: byte cap limits the read");
        free(t);
        console_ring_read(&r, 2, 1, &t, &n, &first, &next);
        CHECK(next == 3 && streq(t, "line2\n"), "ring: at least one line even over the byte cap");
        free(t);
        console_ring_done(&r);

        console_ring_init(&r, 100, 10);
        console_ring_push(&r, "aaaa", 4);
        console_ring_push(&r, "bbbb", 4);
        console_ring_push(&r, "cccc", 4);
        CHECK(r.count == 2 && r.first == 1 && r.bytes == 8, "ring: byte budget evicts oldest");
        console_ring_set_start(&r, 500);
        console_ring_push(&r, "x", 1);
        CHECK(r.first == 500 && console_ring_end(&r) == 501, "ring: restart numbering continues at an index");
        console_ring_done(&r);

        /* A flood: memory stays bounded by the caps. */
        console_ring_init(&r, 1000, 64 * 1024);
        for (int i = 0; i < 200000; i++)
                console_ring_push(&r, "flood flood flood flood flood flood", 35);
        CHECK(r.count <= 1000 && r.bytes <= 64 * 1024 && console_ring_end(&r) == 200000, "ring: flood stays bounded");
        console_ring_done(&r);
}

static void test_ratelimit(void) {
        struct console_ratelimit rl;
        uint64_t sup = 0;
        unsigned allowed = 0;

        console_ratelimit_init(&rl, 1000000, 10);
        for (int i = 0; i < 100; i++)
                allowed += console_ratelimit_allow(&rl, 5000000 + (uint64_t) i, &sup);
        CHECK(allowed == 10, "ratelimit: burst of 10 per interval");
        CHECK(console_ratelimit_allow(&rl, 6000001, &sup) && sup == 90,
              "ratelimit: next interval reports 90 suppressed");
}

static bool utf8_ok(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n;) {
                size_t k = p[i] < 0x80             ? 1
                           : (p[i] & 0xE0) == 0xC0 ? 2
                           : (p[i] & 0xF0) == 0xE0 ? 3
                           : (p[i] & 0xF8) == 0xF0 ? 4
                                                   : 0;
                if (k == 0 || i + k > n)
                        return false;
                for (size_t j = 1; j < k; j++)
                        if ((p[i + j] & 0xC0) != 0x80)
                                return false;
                i += k;
        }
        return true;
}

struct check {
        bool good;
        size_t lines;
};

static int check_line(const char *line, size_t len, void *userdata) {
        struct check *c = userdata;
        c->lines++;
        if (len > 64 || line[len] != 0 || memchr(line, '\r', len) || !utf8_ok((const uint8_t *) line, len) ||
            (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t')))
                c->good = false;
        return 0;
}

/* Random bytes in random chunks: every line is valid UTF-8, has no \r, no
 * trailing blank, and respects the cap. */
static void test_random(void) {
        struct console_splitter s;
        struct check c = {.good = true};
        uint64_t x = 0x2545F4914F6CDD1Dull;
        uint8_t buf[256];

        console_splitter_init(&s, 64);
        for (int round = 0; round < 20000; round++) {
                size_t n = 0;
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                n = 1 + x % sizeof buf;
                for (size_t i = 0; i < n; i++) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        buf[i] = (x & 3) == 0 ? (uint8_t) "\n\r \t\xc3\xa9\xe2\x82\xac"[(x >> 2) % 9]
                                              : (uint8_t) (x >> 8);
                }
                console_splitter_feed(&s, buf, n, check_line, &c);
        }
        console_splitter_finish(&s, check_line, &c);
        console_splitter_done(&s);
        CHECK(c.good && c.lines > 1000, "random: 20000 chunks of hostile bytes give clean, capped lines");
}

int main(void) {
        test_clean();
        test_split();
        test_ring();
        test_ratelimit();
        test_random();
        return tap_done();
}
