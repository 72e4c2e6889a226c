/* SPDX-License-Identifier: MIT */
/*
 * sup-strategy.c: restart decisions, following Erlang/OTP's supervisor.erl:
 * permanent children always come back, transient ones only after an abnormal
 * exit, temporary ones never (and a sibling-triggered restart drops them);
 * more than max_restarts restarts within max_seconds makes the supervisor
 * give up. vigil adds the worker exit-code contract of proto/exit-status.h.
 */
#include "sup-strategy.h"

#include "exit-status.h"
#include "macro.h"

enum exit_kind exit_kind_classify(int code, int signal) {
        if (signal != 0)
                return EXIT_KIND_ABNORMAL;

        switch ((enum worker_exit) code) {
        case WORKER_EXIT_OK:
                return EXIT_KIND_NORMAL;
        case WORKER_EXIT_RESTART:
                return EXIT_KIND_RESTART;
        case WORKER_EXIT_PERMANENT:
                return EXIT_KIND_PERMANENT;
        case WORKER_EXIT_CONFIG:
                return EXIT_KIND_CONFIG;
        case WORKER_EXIT_CRASH:
        case WORKER_EXIT_PROTOCOL:
                return EXIT_KIND_ABNORMAL;
        }
        /* Any undocumented code is a crash: the safe default is to restart. */
        return EXIT_KIND_ABNORMAL;
}

/* restart type x exit kind -> restart? (OTP semantics plus the exit-code contract) */
/* clang-format off */
static const bool restart_table[_RESTART_TYPE_MAX][_EXIT_KIND_MAX] = {
        [RESTART_PERMANENT] = {
                [EXIT_KIND_NORMAL] = true,
                [EXIT_KIND_ABNORMAL] = true,
                [EXIT_KIND_RESTART] = true,
        },
        [RESTART_TRANSIENT] = {
                [EXIT_KIND_ABNORMAL] = true,
                [EXIT_KIND_RESTART] = true,
        },
        /* temporary: never, not even when it asks (the script worker must not re-run). */
        [RESTART_TEMPORARY] = { false },
};
/* clang-format on */

bool restart_wanted(enum restart_type t, enum exit_kind k) {
        if ((unsigned) t >= _RESTART_TYPE_MAX || (unsigned) k >= _EXIT_KIND_MAX)
                return false;
        return restart_table[t][k];
}

bool restart_history_add(struct restart_history *h, const struct sup_intensity *in, uint64_t now_usec) {
        /* Only the newest max_restarts+1 entries can decide, so that is all we keep. */
        size_t cap = MIN((size_t) in->max_restarts + 1, (size_t) RESTART_HISTORY_MAX);
        uint64_t period = (uint64_t) in->max_seconds * USEC_PER_SEC;

        h->at_usec[h->head] = now_usec;
        h->head = (h->head + 1) % cap;
        if (h->n < cap)
                h->n++;

        /* Count entries within the period, newest first (OTP's inPeriod: now - t <= period). */
        size_t in_period = 0;
        for (size_t i = 0; i < h->n; i++) {
                size_t idx = (h->head + cap - 1 - i) % cap;
                if (now_usec - h->at_usec[idx] > period)
                        break;
                in_period++;
        }
        return in_period <= in->max_restarts;
}

static void plan_init(struct strategy_plan *p, enum strategy_verdict v) {
        p->verdict = v;
        p->n_stop = p->n_start = p->n_remove = 0;
}

int strategy_decide(enum sup_strategy s, const struct sup_intensity *in, struct restart_history *h,
                    const struct strategy_child *children, size_t n, size_t exited, enum exit_kind kind,
                    uint64_t now_usec, struct strategy_plan *ret) {
        if (!in || !h || !children || !ret || n > SUP_CHILDREN_MAX || exited >= n || (unsigned) s >= _STRATEGY_MAX ||
            (unsigned) kind >= _EXIT_KIND_MAX)
                return -EINVAL;

        const struct strategy_child *c = &children[exited];
        struct strategy_plan *p = ret;

        if (kind == EXIT_KIND_CONFIG) {
                plan_init(p, VERDICT_FAIL_RUN);
                p->remove[p->n_remove++] = (uint16_t) exited;
                return 0;
        }
        if (!restart_wanted(c->restart, kind)) {
                plan_init(p, VERDICT_NONE);
                /* Non-temporary children that simply ended stay in the tree, down, as in
                 * OTP (a later one_for_all may start them again); permanent failures and
                 * temporary children are dropped. */
                if (kind == EXIT_KIND_PERMANENT || c->restart == RESTART_TEMPORARY)
                        p->remove[p->n_remove++] = (uint16_t) exited;
                return 0;
        }

        if (!restart_history_add(h, in, now_usec)) {
                plan_init(p, VERDICT_GIVE_UP);
                return 0;
        }

        size_t first = exited, last = exited; /* affected range, inclusive, in start order */
        switch (s) {
        case STRATEGY_ONE_FOR_ONE:
                break;
        case STRATEGY_ONE_FOR_ALL:
                first = 0;
                last = n - 1;
                break;
        case STRATEGY_REST_FOR_ONE:
                first = exited;
                last = n - 1;
                break;
        case _STRATEGY_MAX:
        case _STRATEGY_INVALID:
                return -EINVAL;
        }

        plan_init(p, VERDICT_RESTART);
        for (size_t i = last + 1; i-- > first;) {
                const struct strategy_child *o = &children[i];
                if (i != exited && o->alive && !o->removed)
                        p->stop[p->n_stop++] = (uint16_t) i;
        }
        for (size_t i = first; i <= last; i++) {
                const struct strategy_child *o = &children[i];
                if (o->removed)
                        continue;
                /* A temporary sibling caught in the restart is stopped and dropped. */
                if (i != exited && o->restart == RESTART_TEMPORARY) {
                        p->remove[p->n_remove++] = (uint16_t) i;
                        continue;
                }
                p->start[p->n_start++] = (uint16_t) i;
        }
        return 0;
}

int strategy_teardown(const struct strategy_child *children, size_t n, struct strategy_plan *ret) {
        if (!children || !ret || n > SUP_CHILDREN_MAX)
                return -EINVAL;

        plan_init(ret, VERDICT_NONE);
        for (size_t i = n; i-- > 0;)
                if (children[i].alive)
                        ret->stop[ret->n_stop++] = (uint16_t) i;
        return 0;
}

static const char *const strategy_names[_STRATEGY_MAX] = {
        [STRATEGY_ONE_FOR_ONE] = "one_for_one",
        [STRATEGY_ONE_FOR_ALL] = "one_for_all",
        [STRATEGY_REST_FOR_ONE] = "rest_for_one",
};

static const char *const restart_names[_RESTART_TYPE_MAX] = {
        [RESTART_PERMANENT] = "permanent",
        [RESTART_TRANSIENT] = "transient",
        [RESTART_TEMPORARY] = "temporary",
};

static const char *const exit_kind_names[_EXIT_KIND_MAX] = {
        [EXIT_KIND_NORMAL] = "normal",       [EXIT_KIND_ABNORMAL] = "abnormal",
        [EXIT_KIND_RESTART] = "restart",     [EXIT_KIND_PERMANENT] = "permanent-failure",
        [EXIT_KIND_CONFIG] = "config-error",
};

static const char *const verdict_names[_VERDICT_MAX] = {
        [VERDICT_NONE] = "none",
        [VERDICT_RESTART] = "restart",
        [VERDICT_GIVE_UP] = "give-up",
        [VERDICT_FAIL_RUN] = "fail-run",
};

const char *sup_strategy_to_string(enum sup_strategy s) {
        return (unsigned) s < ELEMENTSOF(strategy_names) ? strategy_names[s] : NULL;
}

enum sup_strategy sup_strategy_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(strategy_names); i++)
                if (streq(strategy_names[i], s))
                        return (enum sup_strategy) i;
        return _STRATEGY_INVALID;
}

const char *restart_type_to_string(enum restart_type t) {
        return (unsigned) t < ELEMENTSOF(restart_names) ? restart_names[t] : NULL;
}

enum restart_type restart_type_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(restart_names); i++)
                if (streq(restart_names[i], s))
                        return (enum restart_type) i;
        return _RESTART_TYPE_INVALID;
}

const char *exit_kind_to_string(enum exit_kind k) {
        return (unsigned) k < ELEMENTSOF(exit_kind_names) ? exit_kind_names[k] : NULL;
}

const char *strategy_verdict_to_string(enum strategy_verdict v) {
        return (unsigned) v < ELEMENTSOF(verdict_names) ? verdict_names[v] : NULL;
}
