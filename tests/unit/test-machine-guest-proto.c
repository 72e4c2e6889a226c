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

static bool starts_with(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
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
        CHECK(guest_build_fast_call("echo 'x'", -1, false, &l) == 0 &&
                      streq(l, "if declare -F __vigil_p >/dev/null; then { __vigil_p; set --; "
                               "eval 'echo '\"'\"'x'\"'\"''; } | __vigil_r; "
                               "__vigil_e \"${PIPESTATUS[@]}\"; else printf '\\0?\\n'; fi\n"),
              "build: fast framing call line (a pipeline, no file, one short line)");
        free(l);
        CHECK(guest_build_fast_call("true", 5, false, &l) == 0 && strstr(l, "{ echo $BASHPID; __vigil_p; set --;") &&
                      strstr(l, "eval true; } | __vigil_r 5; __vigil_e"),
              "build: a timeout is the reader's argument, and the command says its pid first");
        free(l);
        CHECK(guest_build_fast_call("true", 0, false, &l) == 0 && strstr(l, "eval true; } | __vigil_r; __vigil_e") &&
                      !strstr(l, "BASHPID"),
              "build: timeout 0 is no timeout, as `timeout 0`");
        free(l);
        CHECK(guest_build_fast_command("true", 5, &l) == 0 &&
                      starts_with(l, "set +m; shopt -s lastpipe; __vigil_r() { local b v n=0 l; ") &&
                      strstr(l, "read -t $1 </dev/ptmx") && strstr(l, "&& s=124; unset __vigil_w") &&
                      strstr(l, "read -r -d '' -n 4096 v") && strstr(l, "printf '%s\\0.' \"$v\"") &&
                      strstr(l, "base64 -w 0") && strstr(l, "__vigil_e() { ") && !strstr(l, "wait $b") &&
                      strstr(l, "__vigil_p() { BASH_ARGV0=bash; BASH_SUBSHELL=0; SHLVL=$((SHLVL + 1)); "
                                "unset -f __vigil_r __vigil_e __vigil_p; shopt -u lastpipe; set -euo pipefail; }") &&
                      strstr(l, "eval true; } | __vigil_r 5; __vigil_e \"${PIPESTATUS[@]}\"\n") &&
                      !strstr(l, "/tmp") && strchr(l, '\n') == l + strlen(l) - 1,
              "build: the defining line carries the reader, then the call");
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

/* The fast framing's output: raw bytes, NUL '.' for a NUL byte, NUL '\n' at
 * the end or NUL '+' base64 NUL '\n'. */
static void test_fast(void) {
        static const struct {
                const char *in;
                size_t in_len;
                const char *out;
                size_t out_len;
                const char *what;
        } ok[] = {
                {"h\xc3\xa9\xff\r\n x\0\n", 10, "h\xc3\xa9\xff\r\n x", 8, "raw bytes exact"},
                {"\0\n", 2, "", 0, "empty output"},
                {"a\0.b\0.\0.\0\n", 10, "a\0b\0\0", 5, "NUL bytes escaped"},
                {"ab\0+Y2Q=\0\n", 10, "abcd", 4, "raw, then base64 of the rest"},
                {"\0+\0\n", 4, "", 0, "empty base64 part"},
                {"!x\0\n", 4, "!x", 2, "a leading '!' is data"},
        };
        struct guest_proto gp;
        size_t n, used;

        guest_proto_init(&gp, 0);
        for (size_t c = 0; c < ELEMENTSOF(ok); c++) {
                bool good = true;
                for (size_t step = 1; step <= ok[c].in_len && good; step++) {
                        uint8_t *o;
                        guest_proto_expect_output_fast(&gp);
                        if (feed_steps(&gp, ok[c].in, ok[c].in_len, step, &used) != GUEST_EVENT_OUTPUT ||
                            used != ok[c].in_len) {
                                good = false;
                                break;
                        }
                        o = guest_proto_take_output(&gp, &n);
                        good = n == ok[c].out_len && memcmp(o, ok[c].out, n) == 0;
                        free(o);
                }
                CHECK(good, "fast: %s, for every chunk size", ok[c].what);
        }
        guest_proto_expect_output_fast(&gp);
        CHECK(feed_steps(&gp, "abc\0x\n", 6, 3, &used) == GUEST_EVENT_ERROR &&
                      strstr(guest_proto_error(&gp), "after a NUL"),
              "fast: an unknown escape is an error");
        guest_proto_expect_output_fast(&gp);
        CHECK(feed_steps(&gp, "\0+YQ\0\n", 6, 2, &used) == GUEST_EVENT_ERROR &&
                      strstr(guest_proto_error(&gp), "middle of a group"),
              "fast: a truncated base64 part is an error");
        guest_proto_expect_output_fast(&gp);
        CHECK(feed_steps(&gp, "\0+YQ==\0x", 8, 2, &used) == GUEST_EVENT_ERROR &&
                      strstr(guest_proto_error(&gp), "after the base64 part"),
              "fast: garbage after the base64 part is an error");
        guest_proto_expect_output_fast(&gp);
        CHECK(feed_steps(&gp, "\0?\n", 3, 1, &used) == GUEST_EVENT_ERROR &&
                      strstr(guest_proto_error(&gp), "reader function"),
              "fast: a shell without the reader function is named");
        guest_proto_expect_output(&gp);
        CHECK(feed_steps(&gp, "abc\0\n", 5, 5, &used) == GUEST_EVENT_ERROR,
              "fast: raw refused in the reference framing");
        guest_proto_done(&gp);
        guest_proto_init(&gp, 4);
        guest_proto_expect_output_fast(&gp);
        CHECK(feed_steps(&gp, "abcdef\0\n", 8, 2, &used) == GUEST_EVENT_ERROR &&
                      strstr(guest_proto_error(&gp), "exceeds the limit of 4 bytes"),
              "fast: cap enforced on raw bytes");
        guest_proto_expect_output_fast(&gp);
        CHECK(feed_steps(&gp, "ab\0.\0.\0.\0\n", 10, 3, &used) == GUEST_EVENT_ERROR,
              "fast: cap enforced on escaped NULs");
        guest_proto_expect_output_fast(&gp);
        CHECK(feed_steps(&gp, "ab\0+YWJj\0\n", 10, 1, &used) == GUEST_EVENT_ERROR,
              "fast: cap enforced across the base64 part");
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
        test_fast();
        test_random();
        test_status();
        test_nonce();
        test_nonce_or_ready();
        return tap_done();
}
