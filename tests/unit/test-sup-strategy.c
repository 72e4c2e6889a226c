/* SPDX-License-Identifier: MIT */
/*
 * test-sup-strategy: every strategy x restart type x exit kind on a three-child
 * tree, temporary and removed siblings, restart intensity at and around its
 * limits, and the exit-code classification, all without a single process.
 */
#include <stdarg.h>

#include "exit-status.h"
#include "sup-strategy.h"
#include "tap.h"

#include "macro.h"

static const struct sup_intensity otp_default = {.max_restarts = 1, .max_seconds = 5};
static const struct sup_intensity generous = {.max_restarts = 1000, .max_seconds = 1};

/* Compare a plan list with an expected list given as count + values. */
static bool list_is(const uint16_t *got, size_t n_got, size_t n, ...) {
        va_list ap;
        bool eq = n_got == n;
        va_start(ap, n);
        for (size_t i = 0; i < n; i++) {
                int want = va_arg(ap, int);
                if (eq && got[i] != want)
                        eq = false;
        }
        va_end(ap);
        return eq;
}

static void test_classify(void) {
        static const struct {
                int code, sig;
                enum exit_kind kind;
        } cases[] = {
                {WORKER_EXIT_OK, 0, EXIT_KIND_NORMAL},
                {WORKER_EXIT_CRASH, 0, EXIT_KIND_ABNORMAL},
                {WORKER_EXIT_RESTART, 0, EXIT_KIND_RESTART},
                {WORKER_EXIT_PERMANENT, 0, EXIT_KIND_PERMANENT},
                {WORKER_EXIT_PROTOCOL, 0, EXIT_KIND_ABNORMAL},
                {WORKER_EXIT_CONFIG, 0, EXIT_KIND_CONFIG},
                {42, 0, EXIT_KIND_ABNORMAL},
                {255, 0, EXIT_KIND_ABNORMAL},
                {-1, 9, EXIT_KIND_ABNORMAL},
                {-1, 15, EXIT_KIND_ABNORMAL},
                {0, 6, EXIT_KIND_ABNORMAL},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CHECK(exit_kind_classify(cases[i].code, cases[i].sig) == cases[i].kind, "exit code %d signal %d is %s",
                      cases[i].code, cases[i].sig, exit_kind_to_string(cases[i].kind));
}

/* The expected restart decision, written independently of restart_table. */
static bool expect_restart(enum restart_type t, enum exit_kind k) {
        if (k == EXIT_KIND_PERMANENT || k == EXIT_KIND_CONFIG || t == RESTART_TEMPORARY)
                return false;
        if (t == RESTART_PERMANENT)
                return true;
        return k == EXIT_KIND_ABNORMAL || k == EXIT_KIND_RESTART; /* transient */
}

/* Three children a, b, c in start order; b exited with @kind, the others run. */
static void test_matrix(void) {
        for (int s = 0; s < _STRATEGY_MAX; s++)
                for (int t = 0; t < _RESTART_TYPE_MAX; t++)
                        for (int k = 0; k < _EXIT_KIND_MAX; k++) {
                                struct strategy_child ch[3] = {
                                        {.restart = RESTART_PERMANENT, .alive = true},
                                        {.restart = t, .alive = false},
                                        {.restart = RESTART_PERMANENT, .alive = true},
                                };
                                struct restart_history h = {};
                                struct strategy_plan p;
                                const char *what = sup_strategy_to_string(s), *rt = restart_type_to_string(t),
                                           *ek = exit_kind_to_string(k);

                                int r = strategy_decide(s, &otp_default, &h, ch, 3, 1, k, 1000, &p);
                                CHECK(r == 0, "%s/%s/%s: decides", what, rt, ek);
                                if (r < 0)
                                        continue;

                                if (k == EXIT_KIND_CONFIG) {
                                        CHECK(p.verdict == VERDICT_FAIL_RUN && p.n_stop == 0 && p.n_start == 0 &&
                                                      list_is(p.remove, p.n_remove, 1, 1),
                                              "%s/%s/%s: fails the run", what, rt, ek);
                                        continue;
                                }
                                if (!expect_restart(t, k)) {
                                        bool dropped = k == EXIT_KIND_PERMANENT || t == RESTART_TEMPORARY;
                                        CHECK(p.verdict == VERDICT_NONE && p.n_stop == 0 && p.n_start == 0 &&
                                                      (dropped ? list_is(p.remove, p.n_remove, 1, 1)
                                                               : p.n_remove == 0) &&
                                                      h.n == 0,
                                              "%s/%s/%s: not restarted%s, no restart counted", what, rt, ek,
                                              dropped ? ", spec dropped" : ", spec kept");
                                        continue;
                                }

                                bool ok = p.verdict == VERDICT_RESTART && p.n_remove == 0 && h.n == 1;
                                switch ((enum sup_strategy) s) {
                                case STRATEGY_ONE_FOR_ONE:
                                        ok = ok && p.n_stop == 0 && list_is(p.start, p.n_start, 1, 1);
                                        break;
                                case STRATEGY_ONE_FOR_ALL:
                                        ok = ok && list_is(p.stop, p.n_stop, 2, 2, 0) &&
                                             list_is(p.start, p.n_start, 3, 0, 1, 2);
                                        break;
                                case STRATEGY_REST_FOR_ONE:
                                        ok = ok && list_is(p.stop, p.n_stop, 1, 2) &&
                                             list_is(p.start, p.n_start, 2, 1, 2);
                                        break;
                                case _STRATEGY_MAX:
                                case _STRATEGY_INVALID:
                                        ok = false;
                                        break;
                                }
                                CHECK(ok, "%s/%s/%s: restarted with the right stop/start order", what, rt, ek);
                        }
}

static void test_temporary_sibling(void) {
        struct strategy_child ch[4] = {
                {.restart = RESTART_PERMANENT, .alive = true},
                {.restart = RESTART_TEMPORARY, .alive = true},
                {.restart = RESTART_PERMANENT, .alive = true},
                {.restart = RESTART_PERMANENT, .alive = false},
        };
        struct restart_history h = {};
        struct strategy_plan p;

        CHECK(strategy_decide(STRATEGY_ONE_FOR_ALL, &generous, &h, ch, 4, 3, EXIT_KIND_ABNORMAL, 1, &p) == 0 &&
                      p.verdict == VERDICT_RESTART && list_is(p.stop, p.n_stop, 3, 2, 1, 0) &&
                      list_is(p.start, p.n_start, 3, 0, 2, 3) && list_is(p.remove, p.n_remove, 1, 1),
              "one_for_all: temporary sibling is stopped and dropped, not restarted");

        ch[3].alive = true;
        ch[0].alive = false;
        CHECK(strategy_decide(STRATEGY_REST_FOR_ONE, &generous, &h, ch, 4, 0, EXIT_KIND_ABNORMAL, 2, &p) == 0 &&
                      p.verdict == VERDICT_RESTART && list_is(p.stop, p.n_stop, 3, 3, 2, 1) &&
                      list_is(p.start, p.n_start, 3, 0, 2, 3) && list_is(p.remove, p.n_remove, 1, 1),
              "rest_for_one from the first child: temporary sibling dropped");

        ch[0].alive = true;
        ch[2].alive = false;
        CHECK(strategy_decide(STRATEGY_REST_FOR_ONE, &generous, &h, ch, 4, 2, EXIT_KIND_ABNORMAL, 3, &p) == 0 &&
                      p.verdict == VERDICT_RESTART && list_is(p.stop, p.n_stop, 1, 3) &&
                      list_is(p.start, p.n_start, 2, 2, 3) && p.n_remove == 0,
              "rest_for_one leaves earlier children (and the temporary one before it) alone");
}

static void test_removed_and_down_siblings(void) {
        struct strategy_child ch[4] = {
                {.restart = RESTART_TEMPORARY, .removed = true},
                {.restart = RESTART_TRANSIENT, .alive = false}, /* ended normally earlier */
                {.restart = RESTART_PERMANENT, .alive = true},
                {.restart = RESTART_PERMANENT, .alive = false}, /* the one that crashed */
        };
        struct restart_history h = {};
        struct strategy_plan p;

        CHECK(strategy_decide(STRATEGY_ONE_FOR_ALL, &generous, &h, ch, 4, 3, EXIT_KIND_ABNORMAL, 1, &p) == 0 &&
                      list_is(p.stop, p.n_stop, 1, 2) && list_is(p.start, p.n_start, 3, 1, 2, 3) && p.n_remove == 0,
              "one_for_all skips removed specs and (like OTP) starts a down transient sibling again");
}

static void test_intensity(void) {
        struct strategy_child ch[1] = {{.restart = RESTART_PERMANENT}};
        struct restart_history h = {};
        struct strategy_plan p;
        const uint64_t s = USEC_PER_SEC;

        strategy_decide(STRATEGY_ONE_FOR_ONE, &otp_default, &h, ch, 1, 0, EXIT_KIND_ABNORMAL, 10 * s, &p);
        CHECK(p.verdict == VERDICT_RESTART, "1 in 5: first restart allowed");
        strategy_decide(STRATEGY_ONE_FOR_ONE, &otp_default, &h, ch, 1, 0, EXIT_KIND_ABNORMAL, 11 * s, &p);
        CHECK(p.verdict == VERDICT_GIVE_UP, "1 in 5: second restart 1 s later gives up");

        h = (struct restart_history){};
        strategy_decide(STRATEGY_ONE_FOR_ONE, &otp_default, &h, ch, 1, 0, EXIT_KIND_ABNORMAL, 10 * s, &p);
        strategy_decide(STRATEGY_ONE_FOR_ONE, &otp_default, &h, ch, 1, 0, EXIT_KIND_ABNORMAL, 15 * s + 1, &p);
        CHECK(p.verdict == VERDICT_RESTART, "1 in 5: a restart just over 5 s later is allowed");
        strategy_decide(STRATEGY_ONE_FOR_ONE, &otp_default, &h, ch, 1, 0, EXIT_KIND_ABNORMAL, 20 * s + 1, &p);
        CHECK(p.verdict == VERDICT_GIVE_UP, "1 in 5: exactly 5 s later is still within the period (OTP =<)");

        h = (struct restart_history){};
        const struct sup_intensity zero = {.max_restarts = 0, .max_seconds = 5};
        strategy_decide(STRATEGY_ONE_FOR_ONE, &zero, &h, ch, 1, 0, EXIT_KIND_ABNORMAL, 10 * s, &p);
        CHECK(p.verdict == VERDICT_GIVE_UP, "max_restarts 0: the first restart gives up");

        h = (struct restart_history){};
        const struct sup_intensity three = {.max_restarts = 3, .max_seconds = 10};
        bool ok = true;
        for (int i = 0; i < 3; i++) {
                strategy_decide(STRATEGY_ONE_FOR_ONE, &three, &h, ch, 1, 0, EXIT_KIND_ABNORMAL, (100 + i) * s, &p);
                ok = ok && p.verdict == VERDICT_RESTART;
        }
        CHECK(ok, "3 in 10: three quick restarts allowed");
        strategy_decide(STRATEGY_ONE_FOR_ONE, &three, &h, ch, 1, 0, EXIT_KIND_ABNORMAL, 103 * s, &p);
        CHECK(p.verdict == VERDICT_GIVE_UP, "3 in 10: the fourth within 10 s gives up");

        /* Restarts that do not happen (transient normal exit) are not counted. */
        h = (struct restart_history){};
        struct strategy_child tr[1] = {{.restart = RESTART_TRANSIENT}};
        for (int i = 0; i < 5; i++)
                strategy_decide(STRATEGY_ONE_FOR_ONE, &otp_default, &h, tr, 1, 0, EXIT_KIND_NORMAL, i * s, &p);
        CHECK(h.n == 0 && p.verdict == VERDICT_NONE, "exits that restart nothing do not count towards intensity");

        /* A long, slow crash loop never gives up and the history stays bounded. */
        h = (struct restart_history){};
        ok = true;
        for (int i = 0; i < 5000; i++) {
                strategy_decide(STRATEGY_ONE_FOR_ONE, &otp_default, &h, ch, 1, 0, EXIT_KIND_ABNORMAL,
                                (uint64_t) i * 6 * s, &p);
                ok = ok && p.verdict == VERDICT_RESTART && h.n <= 2;
        }
        CHECK(ok, "a restart every 6 s with 1 in 5 never gives up; history holds at most 2 entries");

        const struct sup_intensity huge = {.max_restarts = 100000, .max_seconds = 5};
        h = (struct restart_history){};
        ok = true;
        for (int i = 0; i < 3000; i++) {
                strategy_decide(STRATEGY_ONE_FOR_ONE, &huge, &h, ch, 1, 0, EXIT_KIND_ABNORMAL, 1 + i, &p);
                ok = ok && h.n <= RESTART_HISTORY_MAX;
        }
        CHECK(ok, "history never exceeds RESTART_HISTORY_MAX");
}

static void test_teardown_and_args(void) {
        struct strategy_child ch[4] = {
                {.alive = true},
                {.alive = false},
                {.alive = true},
                {.alive = true},
        };
        struct strategy_plan p;
        struct restart_history h = {};

        CHECK(strategy_teardown(ch, 4, &p) == 0 && list_is(p.stop, p.n_stop, 3, 3, 2, 0),
              "teardown stops every alive child in reverse start order");
        CHECK(strategy_decide(STRATEGY_ONE_FOR_ONE, &otp_default, &h, ch, 4, 4, EXIT_KIND_ABNORMAL, 0, &p) == -EINVAL,
              "exited index out of range is rejected");
        CHECK(strategy_decide(_STRATEGY_MAX, &otp_default, &h, ch, 4, 0, EXIT_KIND_ABNORMAL, 0, &p) == -EINVAL,
              "unknown strategy is rejected");
}

static void test_names(void) {
        bool ok = true;
        for (int s = 0; s < _STRATEGY_MAX; s++)
                ok = ok && sup_strategy_from_string(sup_strategy_to_string(s)) == s;
        for (int t = 0; t < _RESTART_TYPE_MAX; t++)
                ok = ok && restart_type_from_string(restart_type_to_string(t)) == t;
        for (int v = 0; v < _VERDICT_MAX; v++)
                ok = ok && strategy_verdict_to_string(v);
        CHECK(ok, "names round-trip");
        CHECK(sup_strategy_from_string("one_for_none") == _STRATEGY_INVALID &&
                      restart_type_from_string("sometimes") == _RESTART_TYPE_INVALID &&
                      sup_strategy_from_string(NULL) == _STRATEGY_INVALID,
              "unknown names are rejected");
}

int main(void) {
        test_classify();
        test_matrix();
        test_temporary_sibling();
        test_removed_and_down_siblings();
        test_intensity();
        test_teardown_and_args();
        test_names();
        return tap_done();
}
