/* SPDX-License-Identifier: MIT */
/* Proves that bounded stderr (proto/log-stderr.c) never blocks on a pipe nobody reads, drops whole lines only once its
 * queue is full, says how many in their place and at the end, and loses nothing for a reader that merely pauses.
 * The supervisor writes stderr through it: a reader that stops reading must not stall a run. */
#include <fcntl.h>
#include <signal.h>

#include "log-stderr.h"
#include "macro.h"
#include "tap.h"

#define LINE_FMT "line %06u ........................................................................\n"

static int reader = -1;

static size_t line_of(char *buf, size_t size, unsigned i) {
        return (size_t) snprintf(buf, size, LINE_FMT, i);
}

static void write_lines(unsigned from, unsigned to) {
        char buf[128];

        for (unsigned i = from; i < to; i++)
                log_stderr_write(buf, line_of(buf, sizeof(buf), i));
}

/* Everything in the pipe now; with @flush, keep flushing the queue as a reader that came back would see it. */
static char *read_all(bool flush) {
        size_t len = 0, cap = 1u << 20;
        char *s = malloc(cap + 1);

        for (;;) {
                if (len + 65536 > cap) {
                        cap *= 2;
                        s = realloc(s, cap + 1);
                }
                ssize_t n = read(reader, s + len, 65536);
                if (n > 0) {
                        len += (size_t) n;
                        continue;
                }
                if (!flush || log_stderr_flush() == 0) {
                        n = read(reader, s + len, 65536); /* the last flush's bytes */
                        if (n > 0) {
                                len += (size_t) n;
                                continue;
                        }
                        break;
                }
        }
        s[len] = 0;
        return s;
}

/* Lines 0..k-1 in order, whole, from the start of @s; returns k, *ret_rest what follows. */
static unsigned prefix_lines(const char *s, const char **ret_rest) {
        char want[128];
        unsigned k = 0;

        for (;;) {
                size_t l = line_of(want, sizeof(want), k);
                if (strncmp(s, want, l) != 0)
                        break;
                s += l;
                k++;
        }
        *ret_rest = s;
        return k;
}

int main(void) {
        const char *rest;
        unsigned long long n = 0;
        char after[128];
        int p[2];

        alarm(60); /* a blocking write would hang here: fail instead */
        if (pipe2(p, O_CLOEXEC) < 0 || dup2(p[1], STDERR_FILENO) < 0)
                return perror("pipe"), EXIT_FAILURE;
        close(p[1]);
        reader = p[0];
        (void) fcntl(reader, F_SETFL, O_NONBLOCK);
        CHECK(log_stderr_bounded("see the test's record") == 0 && log_stderr_is_bounded(),
              "stderr (a pipe) is bounded");
        CHECK(!(fcntl(STDERR_FILENO, F_GETFL) & O_NONBLOCK), "the inherited description stays blocking");

        /* 1. A reader that pauses: 3000 lines (270 KB) wait in the queue, nothing is lost. */
        write_lines(0, 3000);
        CHECK(log_stderr_dropped_total() == 0, "3000 lines into a pipe nobody reads: none dropped yet");
        _cleanup_free_ char *a = read_all(true);
        CHECK(prefix_lines(a, &rest) == 3000 && *rest == 0, "the reader back gets all of them, whole and in order");

        /* 2. Past half the queue, a producer that can wait should, while the reader reads; not once it stopped. */
        write_lines(0, 5000);
        CHECK(log_stderr_congested() && log_stderr_dropped_total() == 0, "5000 lines: congested, none dropped");
        (void) usleep(2100 * 1000);
        CHECK(!log_stderr_congested(), "2 s without reading: the reader has stopped, waiting would stall");
        _cleanup_free_ char *a2 = read_all(true);
        CHECK(prefix_lines(a2, &rest) == 5000 && *rest == 0, "the reader back gets all 5000");

        /* 3. A reader that does not come back in time: 20000 lines (1.8 MB) do not block; whole lines are dropped. */
        write_lines(0, 20000);
        CHECK(log_stderr_dropped_total() > 0, "20000 lines did not block; %llu dropped",
              (unsigned long long) log_stderr_dropped_total());
        log_stderr_drain(0); /* the end of the process, with nobody reading */
        _cleanup_free_ char *b = read_all(false);
        unsigned shown = prefix_lines(b, &rest);
        CHECK(shown > 0 && strlen(b) <= 65536, "the pipe holds the first %u lines, whole", shown);
        CHECK(sscanf(rest, "vigil: %llu lines dropped: stderr was not read fast enough; see the test's record\n",
                     &n) == 1 &&
                      n == 20000 - shown && strchr(rest, '\n')[1] == 0,
              "then one line: %llu lines dropped, and where the full record is", n);

        /* 4. The reader comes back during the run: the notice stands where the lines are missing. */
        write_lines(0, 10000);
        _cleanup_free_ char *c = read_all(true);
        log_stderr_write(after, line_of(after, sizeof(after), 999999));
        _cleanup_free_ char *d = read_all(true);
        shown = prefix_lines(c, &rest);
        CHECK(sscanf(rest, "vigil: %llu lines dropped", &n) == 1 && n == 10000 - shown && strchr(rest, '\n')[1] == 0,
              "a reader that drains again sees %u lines, then that %llu were dropped", shown, n);
        CHECK(streq(d, after), "and the lines after it");
        return tap_done();
}
