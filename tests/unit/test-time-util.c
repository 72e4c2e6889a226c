/* SPDX-License-Identifier: MIT */
/*
 * Proves that every duration becomes a struct timeval with tv_usec below 10^6, and that no C file of the tree
 * arms a timer with a hand-made tv_usec. Why it matters: a 1.2 s timeout written as {.tv_usec = 1200000} is
 * refused or mis-carried by everything but libevent's single carry, and it hides until a constant changes.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "macro.h"
#include "tap.h"
#include "time-util.h"

static bool tv_is(struct timeval tv, long long sec, long long usec) {
        return tv.tv_sec == sec && tv.tv_usec == usec && tv.tv_usec >= 0 && tv.tv_usec < 1000000;
}

static void test_conversions(void) {
        CHECK(tv_is(timeval_from_usec(0), 0, 0), "0 us");
        CHECK(tv_is(timeval_from_usec(999999), 0, 999999), "999999 us");
        CHECK(tv_is(timeval_from_usec(1000000), 1, 0), "1 s is {1, 0}, not {0, 1000000}");
        CHECK(tv_is(timeval_from_usec(1200000), 1, 200000), "1.2 s");
        CHECK(tv_is(timeval_from_usec(3600ull * USEC_PER_SEC + 1), 3600, 1), "an hour and a microsecond");
        CHECK(tv_is(timeval_from_msec(1500), 1, 500000), "1500 ms");
        CHECK(tv_is(timeval_from_msec(999), 0, 999000), "999 ms");
        CHECK(tv_is(timeval_from_seconds(2.5), 2, 500000), "2.5 s");
        CHECK(tv_is(timeval_from_seconds(0.9999999), 1, 0), "0.9999999 s rounds up to {1, 0}");
        CHECK(tv_is(timeval_from_seconds(0.0000004), 0, 0), "below half a microsecond is 0");
        CHECK(tv_is(timeval_from_seconds(-3), 0, 0) && tv_is(timeval_from_seconds(NAN), 0, 0), "negative and NaN: 0");
        CHECK(timeval_from_seconds(1e300).tv_sec > 0 && timeval_from_seconds(1e300).tv_usec < 1000000,
              "a huge timeout is capped, not overflowed");
        for (uint64_t u = 0; u < 5 * USEC_PER_SEC; u += 99991) {
                struct timeval tv = timeval_from_usec(u);
                if (!(tv.tv_usec < 1000000 && (uint64_t) tv.tv_sec * USEC_PER_SEC + (uint64_t) tv.tv_usec == u)) {
                        CHECK(false, "%llu us converts exactly", (unsigned long long) u);
                        break;
                }
        }
}

static void scan(const char *rel, int *n_files) {
        char path[1280];
        DIR *d;
        struct dirent *e;

        snprintf(path, sizeof path, "%s/%s", VIGIL_SOURCE_ROOT, rel);
        d = opendir(path);
        if (!d)
                return;
        while ((e = readdir(d))) {
                char sub[768], *text = NULL, *at;
                size_t n = 0, len = strlen(e->d_name);
                FILE *f;

                if (e->d_name[0] == '.')
                        continue;
                snprintf(sub, sizeof sub, "%s/%s", rel, e->d_name);
                if (e->d_type == DT_DIR) {
                        scan(sub, n_files);
                        continue;
                }
                if (len < 3 || (strcmp(e->d_name + len - 2, ".c") != 0 && strcmp(e->d_name + len - 2, ".h") != 0) ||
                    streq(sub, "proto/time-util.h"))
                        continue;
                snprintf(path, sizeof path, "%s/%s", VIGIL_SOURCE_ROOT, sub);
                f = fopen(path, "re");
                if (!f)
                        continue;
                if (getdelim(&text, &n, 0, f) > 0) {
                        (*n_files)++;
                        at = strstr(text, ".tv_usec =");
                        CHECK(!at, "%s sets no tv_usec by hand (use timeval_from_usec())", sub);
                }
                fclose(f);
                free(text);
        }
        closedir(d);
}

static void test_no_hand_made_timevals(void) {
        static const char *const dirs[] = {"proto", "supervisor", "workers", "tests/helpers", "tools"};
        int n_files = 0;

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                scan(dirs[i], &n_files);
        CHECK(n_files > 50, "the tree's C files were read (%d)", n_files);
}

int main(void) {
        test_conversions();
        test_no_hand_made_timevals();
        return tap_done();
}
