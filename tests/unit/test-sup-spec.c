/* SPDX-License-Identifier: MIT */
/*
 * test-sup-spec: the `vigil supervise` spec format. A full spec parses into
 * the expected structs with OTP defaults filled in; every kind of mistake is
 * refused with a message that names the offending key.
 */
#include "sup-spec.h"
#include "tap.h"

#include "macro.h"

static void test_good(void) {
        struct sup_spec s;
        char *err = NULL;
        int r = sup_spec_parse(
                "{\"strategy\": \"rest_for_one\", \"intensity\": {\"max_restarts\": 3, \"max_seconds\": 10},"
                " \"children\": ["
                "  {\"id\": \"a\", \"kind\": \"test\", \"restart\": \"transient\", \"shutdown\": 2000,"
                "   \"significant\": true, \"start_timeout\": 1500, \"args\": [\"--crash-after-ms\", \"300\"], "
                "\"config\": {\"x\": [1, 2]}},"
                "  {\"id\": \"b.2\", \"kind\": \"machine\", \"shutdown\": \"brutal_kill\"}]}",
                &s, &err);
        CHECK(r == 0, "full spec parses (%s)", err ?: "no error");
        if (r < 0)
                return;
        CHECK(s.strategy == STRATEGY_REST_FOR_ONE && s.intensity.max_restarts == 3 && s.intensity.max_seconds == 10,
              "strategy and intensity read");
        CHECK(s.n_children == 2 && streq(s.children[0].id, "a") && s.children[0].kind == KIND_TEST &&
                      s.children[0].restart == RESTART_TRANSIENT && s.children[0].shutdown_ms == 2000,
              "first child read");
        CHECK(strv_length(s.children[0].args) == 2 && streq(s.children[0].args[1], "300"), "args read");
        CHECK(s.children[0].significant && !s.children[1].significant, "significant read, default false");
        CHECK(s.children[0].start_timeout_ms == 1500 && s.children[1].start_timeout_ms == 0,
              "start_timeout read, default 0 (none)");
        CHECK(streq(s.children[0].config_json, "{\"x\":[1,2]}"), "config kept as compact JSON text");
        CHECK(s.children[1].restart == RESTART_PERMANENT && s.children[1].shutdown_ms == SHUTDOWN_BRUTAL_KILL &&
                      streq(s.children[1].config_json, "{}") && strv_length(s.children[1].args) == 0,
              "defaults: permanent, {} config, no args; brutal_kill read");

        struct child_spec copy;
        CHECK(child_spec_copy(&s.children[0], &copy) == 0 && streq(copy.id, "a") &&
                      streq(copy.args[0], "--crash-after-ms") && copy.args != s.children[0].args,
              "deep copy");
        CHECK(child_spec_validate(&copy, NULL) == 0, "copied spec validates");
        child_spec_done(&copy);
        sup_spec_done(&s);

        r = sup_spec_parse("{\"children\": [{\"id\": \"x\", \"kind\": \"test\"}]}", &s, NULL);
        CHECK(r == 0 && s.strategy == STRATEGY_ONE_FOR_ONE && s.intensity.max_restarts == 1 &&
                      s.intensity.max_seconds == 5 && s.children[0].shutdown_ms == SHUTDOWN_DEFAULT_MS,
              "OTP defaults: one_for_one, 1 restart in 5 s, 5000 ms shutdown");
        if (r == 0)
                sup_spec_done(&s);
}

static void test_bad(void) {
        static const struct {
                const char *json, *must_name;
        } cases[] = {
                {"{", "not valid JSON"},
                {"[]", "expected a JSON object"},
                {"{\"children\": [{\"id\": \"a\", \"kind\": \"test\"}], \"stratgy\": \"x\"}", "stratgy: unknown key"},
                {"{\"strategy\": \"one_for_none\", \"children\": [{\"id\": \"a\", \"kind\": \"test\"}]}", "strategy"},
                {"{\"intensity\": {\"max_restarts\": -1}, \"children\": [{\"id\": \"a\", \"kind\": \"test\"}]}",
                 "intensity.max_restarts"},
                {"{\"intensity\": {\"max_seconds\": 0}, \"children\": [{\"id\": \"a\", \"kind\": \"test\"}]}",
                 "intensity.max_seconds"},
                {"{\"intensity\": {\"period\": 5}, \"children\": [{\"id\": \"a\", \"kind\": \"test\"}]}",
                 "intensity.period: unknown key"},
                {"{\"intensity\": {\"max_restarts\": \"1\"}, \"children\": [{\"id\": \"a\", \"kind\": \"test\"}]}",
                 "intensity.max_restarts: expected an integer"},
                {"{}", "children: required"},
                {"{\"children\": []}", "children: expected 1.."},
                {"{\"children\": [{\"kind\": \"test\"}]}", "children[0].id"},
                {"{\"children\": [{\"id\": \"a b\", \"kind\": \"test\"}]}", "children[0].id"},
                {"{\"children\": [{\"id\": \"a\", \"kind\": \"vm\"}]}", "children[0].kind"},
                {"{\"children\": [{\"id\": \"a\", \"kind\": \"supervisor\"}]}", "children[0].kind"},
                {"{\"children\": [{\"id\": \"a\", \"kind\": \"test\", \"restart\": \"sometimes\"}]}",
                 "children[0].restart"},
                {"{\"children\": [{\"id\": \"a\", \"kind\": \"test\", \"shutdown\": \"infinity\"}]}",
                 "children[0].shutdown"},
                {"{\"children\": [{\"id\": \"a\", \"kind\": \"test\", \"shutdown\": -5}]}", "children[0].shutdown"},
                {"{\"children\": [{\"id\": \"a\", \"kind\": \"test\", \"args\": \"--hang\"}]}", "children[0].args"},
                {"{\"children\": [{\"id\": \"a\", \"kind\": \"test\", \"start_timeout\": -1}]}",
                 "children[0].start_timeout"},
                {"{\"children\": [{\"id\": \"a\", \"kind\": \"test\", \"significant\": 1}]}",
                 "children[0].significant"},
                {"{\"children\": [{\"id\": \"a\", \"kind\": \"test\", \"args\": [1]}]}", "children[0].args[0]"},
                {"{\"children\": [{\"id\": \"a\", \"kind\": \"test\", \"restrat\": \"temporary\"}]}",
                 "children[0].restrat: unknown key"},
                {"{\"children\": [{\"id\": \"a\", \"kind\": \"test\"}, {\"id\": \"a\", \"kind\": \"test\"}]}",
                 "children[1].id: duplicate"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct sup_spec s;
                char *err = NULL;
                int r = sup_spec_parse(cases[i].json, &s, &err);
                CHECK(r == -EINVAL && err && strstr(err, cases[i].must_name), "refused, naming '%s' (got: %s)",
                      cases[i].must_name, err ?: "(none)");
                free(err);
                if (r == 0)
                        sup_spec_done(&s);
        }
}

static void test_validate(void) {
        char *args[] = {NULL};
        struct child_spec c = {
                .id = (char *) "ok", .kind = KIND_TEST, .restart = RESTART_TEMPORARY, .shutdown_ms = 10, .args = args};
        char *err = NULL;

        CHECK(child_spec_validate(&c, &err) == 0, "valid child spec");
        c.kind = KIND_SUPERVISOR;
        CHECK(child_spec_validate(&c, &err) == -EINVAL && err && strstr(err, "kind"), "kind supervisor refused");
        free(err);
        c.kind = KIND_TEST;
        c.shutdown_ms = -7;
        err = NULL;
        CHECK(child_spec_validate(&c, &err) == -EINVAL && err && strstr(err, "shutdown"), "negative shutdown refused");
        free(err);
        CHECK(!child_id_valid("") && !child_id_valid("a/b") && child_id_valid("vlan-1.x_Y"), "id charset");
}

int main(void) {
        test_good();
        test_bad();
        test_validate();
        return tap_done();
}
