/* SPDX-License-Identifier: MIT */
/*
 * test-machine-guest-proto: the backdoor protocol state machine against the
 * reference's exact command text and against hostile byte streams (markers
 * split across reads, garbage, oversized output, bad status lines).
 */
#include <stdio.h>

#include "guest-proto.h"
#include "macro.h"
#include "tap.h"

/* Feed @s in pieces of @step bytes; return the first event != NONE (or NONE). */
static enum guest_event feed_steps(struct guest_proto *gp, const char *s, size_t len, size_t step, size_t *ret_used) {
        size_t off = 0;
        while (off < len) {
                size_t n = MIN(step, len - off), used;
                enum guest_event ev = guest_proto_feed(gp, (const uint8_t *) s + off, n, &used);
                off += used;
                if (ev != GUEST_EVENT_NONE) {
                        *ret_used = off;
                        return ev;
                }
        }
        *ret_used = off;
        return GUEST_EVENT_NONE;
}

static void test_quote(void) {
        char *q;

        CHECK(guest_shell_quote("abc-_./=:,+@%", &q) == 0 && streq(q, "abc-_./=:,+@%"), "quote: safe chars bare");
        free(q);
        CHECK(guest_shell_quote("", &q) == 0 && streq(q, "''"), "quote: empty string is ''");
        free(q);
        CHECK(guest_shell_quote("it's", &q) == 0 && streq(q, "'it'\"'\"'s'"), "quote: ' becomes '\"'\"'");
        free(q);
        CHECK(guest_shell_quote("a b$c\n", &q) == 0 && streq(q, "'a b$c\n'"), "quote: spaces, $ and newline quoted");
        free(q);
}

static void test_build(void) {
        char *l;

        CHECK(guest_build_command("echo hi", 900, &l) == 0 &&
                      streq(l, "timeout 900 bash -c 'set -euo pipefail; echo hi' | (base64 -w 0; echo)\n"),
              "build: reference line with timeout");
        free(l);
        CHECK(guest_build_command("true", -1, &l) == 0 &&
                      streq(l, "bash -c 'set -euo pipefail; true' | (base64 -w 0; echo)\n"),
              "build: no timeout prefix when none");
        free(l);
        CHECK(guest_build_command("echo 'x'", 5, &l) == 0 &&
                      streq(l, "timeout 5 bash -c 'set -euo pipefail; echo '\"'\"'x'\"'\"'' | (base64 -w 0; echo)\n"),
              "build: embedded single quotes");
        free(l);
        CHECK(guest_build_fast_command("echo 'x'", -1, &l) == 0 &&
                      streq(l,
                            "( set --; set -euo pipefail; eval 'echo '\"'\"'x'\"'\"'' ) >/tmp/.vigil-out; set -- $?; "
                            "if IFS= read -r -d '' -n 65536 __vigil_out </tmp/.vigil-out; then base64 -w 0 "
                            "</tmp/.vigil-out; echo; else printf '!%s\\0\\n' \"$__vigil_out\"; fi; unset __vigil_out; "
                            "echo $1\n"),
              "build: fast framing line");
        free(l);
        CHECK(guest_build_fast_command("true", 5, &l) == 0 && strstr(l, "read -t 5 </dev/ptmx") &&
                      strstr(l, "eval true ) <&0 >/tmp/.vigil-out &") && strstr(l, "set -- 124"),
              "build: fast framing with a watchdog for the timeout");
        free(l);
        CHECK(guest_build_nonce_command("vigil-sync-1234", &l) == 0 && streq(l, "echo 'v''igil-sync-1234'\n") &&
                      !strstr(l, "vigil-sync-1234"),
              "build: nonce command does not contain its own answer");
        free(l);
        CHECK(guest_build_nonce_command("bad nonce'", &l) == -EINVAL, "build: unsafe nonce refused");
        CHECK(strcmp(GUEST_STATUS_COMMAND, "echo ${PIPESTATUS[0]}\n") == 0, "build: status command text");
}

static void test_ready(void) {
        struct guest_proto gp;
        const char *s = "boot noise\r\nconnecting to host...\nSpawning backdoor root shell...\n";
        size_t used;

        guest_proto_init(&gp, 0);
        for (size_t step = 1; step <= strlen(s); step++) {
                guest_proto_expect_ready(&gp);
                if (feed_steps(&gp, s, strlen(s), step, &used) != GUEST_EVENT_READY) {
                        CHECK(false, "ready: marker found for every chunk size");
                        goto out;
                }
        }
        CHECK(true, "ready: marker found for every chunk size 1..len");
        guest_proto_expect_ready(&gp);
        CHECK(feed_steps(&gp, "Spawning backdoor root shell..", 30, 30, &used) == GUEST_EVENT_NONE,
              "ready: partial marker is not ready");
        CHECK(feed_steps(&gp, ".", 1, 1, &used) == GUEST_EVENT_READY, "ready: completed by the next chunk");
        guest_proto_expect_ready(&gp);
        CHECK(feed_steps(&gp, "SSSpawning backdoor root shellSpawning backdoor root shell...", 61, 7, &used) ==
                      GUEST_EVENT_READY,
              "ready: overlapping false start");
out:
        guest_proto_done(&gp);
}

static enum guest_event output_of(struct guest_proto *gp, const char *line, size_t step, uint8_t **ret,
                                  size_t *ret_len) {
        size_t used;
        guest_proto_expect_output(gp);
        enum guest_event ev = feed_steps(gp, line, strlen(line), step, &used);
        if (ev == GUEST_EVENT_OUTPUT)
                *ret = guest_proto_take_output(gp, ret_len);
        return ev;
}

static void test_output(void) {
        struct guest_proto gp;
        uint8_t *o;
        size_t n, used;

        guest_proto_init(&gp, 0);
        CHECK(output_of(&gp, "aGVsbG8K\n", 3, &o, &n) == GUEST_EVENT_OUTPUT && n == 6 && memcmp(o, "hello\n", 6) == 0,
              "output: decodes hello\\n");
        free(o);
        CHECK(output_of(&gp, "\n", 1, &o, &n) == GUEST_EVENT_OUTPUT && n == 0, "output: empty line is empty output");
        free(o);
        CHECK(output_of(&gp, "AP8A/w==\n", 1, &o, &n) == GUEST_EVENT_OUTPUT && n == 4 && o[0] == 0 && o[1] == 0xff &&
                      o[2] == 0 && o[3] == 0xff,
              "output: binary bytes with padding");
        free(o);
        CHECK(output_of(&gp, "w6k=\n", 2, &o, &n) == GUEST_EVENT_OUTPUT && n == 2 && memcmp(o, "\xc3\xa9", 2) == 0,
              "output: UTF-8 é");
        free(o);
        CHECK(output_of(&gp, "aGV*bG8K\n", 4, &o, &n) == GUEST_EVENT_ERROR && strstr(guest_proto_error(&gp), "0x2a"),
              "output: garbage byte is a clear error");
        CHECK(gp.phase == GUEST_PHASE_IDLE, "output: error leaves the machine idle");
        CHECK(output_of(&gp, "aGVsbG8\n", 4, &o, &n) == GUEST_EVENT_ERROR, "output: truncated group is an error");
        CHECK(output_of(&gp, "aG==bG8K\n", 4, &o, &n) == GUEST_EVENT_ERROR, "output: data after padding is an error");
        CHECK(output_of(&gp, "a===\n", 4, &o, &n) == GUEST_EVENT_ERROR, "output: misplaced padding is an error");

        /* Two lines in one chunk: the first event consumes only the first line. */
        guest_proto_expect_output(&gp);
        CHECK(guest_proto_feed(&gp, (const uint8_t *) "eA==\n0\n", 7, &used) == GUEST_EVENT_OUTPUT && used == 5,
              "output: stops after its newline");
        free(guest_proto_take_output(&gp, &n));
        guest_proto_expect_status(&gp);
        CHECK(guest_proto_feed(&gp, (const uint8_t *) "0\n", 2, &used) == GUEST_EVENT_STATUS &&
                      guest_proto_status(&gp) == 0,
              "output: rest parsed as status");
        guest_proto_done(&gp);

        /* The cap: 12 bytes allowed, 15 sent. */
        guest_proto_init(&gp, 12);
        CHECK(output_of(&gp, "MDEyMzQ1Njc4OWFi\n", 5, &o, &n) == GUEST_EVENT_OUTPUT && n == 12,
              "cap: exactly the limit passes");
        free(o);
        CHECK(output_of(&gp, "MDEyMzQ1Njc4OWFiY2Rl\n", 5, &o, &n) == GUEST_EVENT_ERROR &&
                      strstr(guest_proto_error(&gp), "exceeds the limit of 12 bytes"),
              "cap: beyond the limit is a clear error");
        guest_proto_done(&gp);

        /* A large output in odd chunk sizes decodes exactly. */
        guest_proto_init(&gp, 0);
        size_t big = 3 * 400000;
        char *line = malloc(big / 3 * 4 + 2);
        for (size_t i = 0; i < big / 3; i++)
                memcpy(line + 4 * i, "/+9A", 4); /* bytes ff ef 40 */
        strcpy(line + big / 3 * 4, "\n");
        CHECK(output_of(&gp, line, 4093, &o, &n) == GUEST_EVENT_OUTPUT && n == big && o[0] == 0xff && o[1] == 0xef &&
                      o[2] == 0x40 && o[big - 1] == 0x40,
              "output: 1.2 MB in 4093-byte reads");
        free(o);
        free(line);
        guest_proto_done(&gp);
}

static void test_raw(void) {
        struct guest_proto gp;
        const char in[] = "!h\xc3\xa9\xff\r\n x\0\n0\n";
        uint8_t *o;
        size_t n, used;

        guest_proto_init(&gp, 0);
        for (size_t step = 1; step <= sizeof in - 1; step++) {
                guest_proto_expect_output_fast(&gp);
                if (feed_steps(&gp, in, sizeof in - 1, step, &used) != GUEST_EVENT_OUTPUT || used != 11) {
                        CHECK(false, "raw: '!' output decoded for every chunk size");
                        goto out;
                }
                o = guest_proto_take_output(&gp, &n);
                if (n != 8 || memcmp(o, "h\xc3\xa9\xff\r\n x", 8) != 0) {
                        free(o);
                        CHECK(false, "raw: bytes exact");
                        goto out;
                }
                free(o);
        }
        CHECK(true, "raw: '!' output exact for every chunk size");
        guest_proto_expect_output_fast(&gp);
        CHECK(feed_steps(&gp, "!\0\n", 3, 1, &used) == GUEST_EVENT_OUTPUT, "raw: empty output");
        free(guest_proto_take_output(&gp, &n));
        CHECK(n == 0, "raw: empty output has length 0");
        guest_proto_expect_output_fast(&gp);
        CHECK(feed_steps(&gp, "aGkK\n", 5, 2, &used) == GUEST_EVENT_OUTPUT, "raw framing still accepts base64");
        free(guest_proto_take_output(&gp, &n));
        CHECK(n == 3, "... decoded");
        guest_proto_expect_output_fast(&gp);
        CHECK(feed_steps(&gp, "!abc\0x\n", 7, 3, &used) == GUEST_EVENT_ERROR &&
                      strstr(guest_proto_error(&gp), "after raw output"),
              "raw: garbage after the NUL is an error");
        guest_proto_expect_output(&gp);
        CHECK(feed_steps(&gp, "!abc\0\n", 6, 6, &used) == GUEST_EVENT_ERROR, "raw: refused in the reference framing");
        guest_proto_done(&gp);
        guest_proto_init(&gp, 4);
        guest_proto_expect_output_fast(&gp);
        CHECK(feed_steps(&gp, "!abcdef\0\n", 9, 2, &used) == GUEST_EVENT_ERROR &&
                      strstr(guest_proto_error(&gp), "exceeds the limit of 4 bytes"),
              "raw: cap enforced");
out:
        guest_proto_done(&gp);
}

static void test_status(void) {
        struct guest_proto gp;
        size_t used;

        guest_proto_init(&gp, 0);
        static const struct {
                const char *in;
                enum guest_event ev;
                int status;
        } cases[] = {
                {"0\n", GUEST_EVENT_STATUS, 0},     {"124\n", GUEST_EVENT_STATUS, 124},
                {" 7 \r\n", GUEST_EVENT_STATUS, 7}, {"\n", GUEST_EVENT_ERROR, 0},
                {"abc\n", GUEST_EVENT_ERROR, 0},    {"99999999999\n", GUEST_EVENT_ERROR, 0},
                {"1 2\n", GUEST_EVENT_ERROR, 0},    {"000000000000000000000000000000\n", GUEST_EVENT_ERROR, 0},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char what[64];
                guest_proto_expect_status(&gp);
                enum guest_event ev = feed_steps(&gp, cases[i].in, strlen(cases[i].in), 1, &used);
                snprintf(what, sizeof what, "status: case %zu", i);
                CHECK(ev == cases[i].ev && (ev != GUEST_EVENT_STATUS || guest_proto_status(&gp) == cases[i].status),
                      "%s", what);
        }
        guest_proto_done(&gp);
}

static void test_nonce(void) {
        struct guest_proto gp;
        size_t used;
        const char *s = "c3RhbGUK\n0\necho 'v''igil-sync-ab'\r\nvigil-sync-ab\n";

        guest_proto_init(&gp, 0);
        CHECK(guest_proto_expect_nonce(&gp, "vigil-sync-ab") == 0, "nonce: accepted");
        CHECK(feed_steps(&gp, s, strlen(s), 3, &used) == GUEST_EVENT_SYNCED && used == strlen(s),
              "nonce: stale output and tty echo skipped, synced at the nonce line");
        CHECK(guest_proto_expect_nonce(&gp, "x y") == -EINVAL, "nonce: invalid characters refused");
        /* idle drops stray bytes */
        guest_proto_reset(&gp);
        CHECK(guest_proto_feed(&gp, (const uint8_t *) "junk", 4, &used) == GUEST_EVENT_NONE && gp.stray_bytes == 4,
              "idle: stray bytes counted and dropped");
        guest_proto_done(&gp);
}

/* After execute(check_output=False) the shell either lives (the nonce comes
 * back, after the command's own output) or a fresh one starts (its ready
 * line, maybe split across reads): either ends the wait, with the right
 * event, so the next command neither hangs nor reads stale output. */
static void test_nonce_or_ready(void) {
        struct guest_proto gp;
        size_t used;
        const char *alive = "c3RhbGUK\nvigil-sync-cd\n";
        const char *fresh = "[  5.1] systemd[1]: Switching root.\nSpawning backdoor root shell...\nleftover";

        guest_proto_init(&gp, 0);
        CHECK(guest_proto_expect_nonce_or_ready(&gp, "vigil-sync-cd") == 0, "nonce|ready: accepted");
        CHECK(feed_steps(&gp, alive, strlen(alive), 5, &used) == GUEST_EVENT_SYNCED && used == strlen(alive),
              "nonce|ready: a live shell syncs at its nonce");
        CHECK(guest_proto_expect_nonce_or_ready(&gp, "vigil-sync-cd") == 0, "nonce|ready: again");
        CHECK(feed_steps(&gp, fresh, strlen(fresh), 4, &used) == GUEST_EVENT_READY && gp.phase == GUEST_PHASE_IDLE,
              "nonce|ready: a fresh shell's ready line, split across reads, ends the wait as READY");
        CHECK(guest_proto_expect_nonce(&gp, "vigil-sync-cd") == 0 &&
                      feed_steps(&gp, fresh, strlen(fresh), 4, &used) == GUEST_EVENT_NONE,
              "nonce only: a ready line does not count");
        guest_proto_done(&gp);
}

/* Random streams in every phase, in random chunks: the parser must never
 * crash, never hold more than the cap, and always end in a defined phase. */
static void test_random(void) {
        static const char alphabet[] = "AZaz09+/=\n\r!\0 Spawning backdoor root shell...vigil-sync-x";
        struct guest_proto gp;
        uint64_t x = 0x9e3779b97f4a7c15ull;
        uint8_t buf[512];
        bool good = true;

        guest_proto_init(&gp, 300);
        for (int round = 0; round < 20000 && good; round++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                switch (x % 5) {
                case 0:
                        guest_proto_expect_ready(&gp);
                        break;
                case 1:
                        guest_proto_expect_output(&gp);
                        break;
                case 2:
                        guest_proto_expect_output_fast(&gp);
                        break;
                case 3:
                        guest_proto_expect_status(&gp);
                        break;
                default:
                        (void) guest_proto_expect_nonce(&gp, "vigil-sync-x");
                        break;
                }
                size_t len = (x >> 8) % sizeof buf;
                for (size_t i = 0; i < len; i++) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        buf[i] = (x & 1) ? (uint8_t) alphabet[(x >> 1) % (sizeof alphabet - 1)] : (uint8_t) (x >> 9);
                }
                for (size_t off = 0; off < len;) {
                        size_t step = 1 + (x >> 20) % 64, used = 0;
                        enum guest_event ev = guest_proto_feed(&gp, buf + off, MIN(step, len - off), &used);
                        if (used == 0 || used > MIN(step, len - off) || gp.out_len > 300) {
                                good = false;
                                break;
                        }
                        off += used;
                        if (ev == GUEST_EVENT_OUTPUT) {
                                size_t n;
                                free(guest_proto_take_output(&gp, &n));
                        }
                }
        }
        CHECK(good, "random: 20000 hostile streams in random chunks, no overrun, progress every call");
        guest_proto_done(&gp);
}

int main(void) {
        test_quote();
        test_build();
        test_ready();
        test_output();
        test_raw();
        test_random();
        test_status();
        test_nonce();
        test_nonce_or_ready();
        return tap_done();
}
