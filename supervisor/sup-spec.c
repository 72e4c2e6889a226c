/* SPDX-License-Identifier: MIT */
/*
 * sup-spec.c: the `vigil supervise` JSON spec -> struct sup_spec, strictly:
 * unknown keys, wrong types and out-of-range values are refused with a message
 * that names the key path, because a typo in a supervision spec otherwise
 * shows up much later as a restart policy nobody asked for.
 */
#include <json-c/json.h>
#include <stdarg.h>

#include "defaults.h"
#include "errmsg.h"
#include "macro.h"
#include "sup-spec.h"

void sup_spec_init(struct sup_spec *s) {
        *s = (struct sup_spec){
                .strategy = STRATEGY_ONE_FOR_ONE,
                .intensity = {.max_restarts = DEFAULT_INTENSITY_MAX_RESTARTS,
                              .max_seconds = DEFAULT_INTENSITY_MAX_SECONDS},
        };
}

bool child_id_valid(const char *id) {
        size_t n = id ? strlen(id) : 0;

        if (n == 0 || n > NAME_MAX_LEN)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = id[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                      ch == '-' || ch == '.'))
                        return false;
        }
        return true;
}

int child_spec_validate(const struct child_spec *c, char **ret_error) {
        const char *id = c->id ?: "?";

        if (!child_id_valid(c->id))
                return errmsg_invalid(ret_error, "child '%s': id must be 1-%u characters of [A-Za-z0-9_.-]", id,
                                      NAME_MAX_LEN);
        if (c->kind <= KIND_SUPERVISOR || c->kind >= _KIND_MAX)
                return errmsg_invalid(ret_error, "child '%s': kind must be machine, switch, script or test", id);
        if ((unsigned) c->restart >= _RESTART_TYPE_MAX)
                return errmsg_invalid(ret_error, "child '%s': restart must be permanent, transient or temporary", id);
        if (c->shutdown_ms != SHUTDOWN_BRUTAL_KILL && (c->shutdown_ms < 0 || c->shutdown_ms > SHUTDOWN_MAX_MS))
                return errmsg_invalid(ret_error, "child '%s': shutdown must be \"brutal_kill\" or 0..%d ms", id,
                                      SHUTDOWN_MAX_MS);
        if (c->start_timeout_ms < 0 || c->start_timeout_ms > SHUTDOWN_MAX_MS)
                return errmsg_invalid(ret_error, "child '%s': start_timeout must be 0..%d ms", id, SHUTDOWN_MAX_MS);
        if (strv_length(c->args) > MSG_STRV_MAX)
                return errmsg_invalid(ret_error, "child '%s': at most %u args", id, MSG_STRV_MAX);
        if (c->config_json && strlen(c->config_json) > MSG_TEXT_MAX)
                return errmsg_invalid(ret_error, "child '%s': config is larger than %u bytes", id, MSG_TEXT_MAX);
        return 0;
}

int child_spec_copy(const struct child_spec *src, struct child_spec *ret) {
        struct child_spec c = {
                .kind = src->kind,
                .restart = src->restart,
                .shutdown_ms = src->shutdown_ms,
                .significant = src->significant,
                .interactive = src->interactive,
                .start_timeout_ms = src->start_timeout_ms,
        };

        c.id = strdup(src->id);
        c.args = strv_copy(src->args);
        c.config_json = strdup(src->config_json ?: "{}");
        if (!c.id || !c.args || !c.config_json) {
                child_spec_done(&c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

void child_spec_done(struct child_spec *c) {
        if (!c)
                return;
        free(c->id);
        strv_free(c->args);
        free(c->config_json);
        *c = (struct child_spec){};
}

void sup_spec_done(struct sup_spec *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n_children; i++)
                child_spec_done(&s->children[i]);
        free(s->children);
        s->children = NULL;
        s->n_children = 0;
}

/* Refuse any key of @obj not in @allowed (NULL-terminated). */
static int check_keys(json_object *obj, const char *const *allowed, const char *where, char **ret_error) {
        json_object_object_foreach(obj, key, val) {
                bool ok = false;
                (void) val;
                for (size_t i = 0; allowed[i] && !ok; i++)
                        ok = streq(allowed[i], key);
                if (!ok)
                        return errmsg_invalid(ret_error, "%s%s%s: unknown key", where, where[0] ? "." : "", key);
        }
        return 0;
}

/* An integer in [min, max] (JSON integers only, no strings or fractions). */
static int get_int(json_object *v, int64_t min, int64_t max, const char *path, int64_t *ret, char **ret_error) {
        if (!json_object_is_type(v, json_type_int))
                return errmsg_invalid(ret_error, "%s: expected an integer", path);
        errno = 0;
        int64_t x = json_object_get_int64(v);
        if (errno != 0 || x < min || x > max)
                return errmsg_invalid(ret_error, "%s: must be between %lld and %lld", path, (long long) min,
                                      (long long) max);
        *ret = x;
        return 0;
}

static int parse_child(json_object *o, size_t idx, struct child_spec *c, char **ret_error) {
        static const char *const keys[] = {"id",   "kind",   "restart", "shutdown", "significant", "start_timeout",
                                           "args", "config", NULL};
        char where[64];
        json_object *v;
        int r;

        snprintf(where, sizeof(where), "children[%zu]", idx);
        if (!json_object_is_type(o, json_type_object))
                return errmsg_invalid(ret_error, "%s: expected an object", where);
        r = check_keys(o, keys, where, ret_error);
        if (r < 0)
                return r;

        if (!json_object_object_get_ex(o, "id", &v) || !json_object_is_type(v, json_type_string))
                return errmsg_invalid(ret_error, "%s.id: required, a string", where);
        if (!child_id_valid(json_object_get_string(v)))
                return errmsg_invalid(ret_error, "%s.id: must be 1-%u characters of [A-Za-z0-9_.-]", where,
                                      NAME_MAX_LEN);
        c->id = strdup(json_object_get_string(v));
        if (!c->id)
                return -ENOMEM;

        if (!json_object_object_get_ex(o, "kind", &v) || !json_object_is_type(v, json_type_string))
                return errmsg_invalid(ret_error, "%s.kind: required, one of machine, switch, script, test", where);
        c->kind = worker_kind_from_string(json_object_get_string(v));
        if (c->kind <= KIND_SUPERVISOR)
                return errmsg_invalid(ret_error, "%s.kind: expected machine, switch, script or test, got \"%s\"",
                                      where, json_object_get_string(v));

        c->restart = RESTART_PERMANENT;
        if (json_object_object_get_ex(o, "restart", &v)) {
                c->restart = json_object_is_type(v, json_type_string)
                                     ? restart_type_from_string(json_object_get_string(v))
                                     : _RESTART_TYPE_INVALID;
                if (c->restart < 0)
                        return errmsg_invalid(ret_error, "%s.restart: expected permanent, transient or temporary",
                                              where);
        }

        c->shutdown_ms = SHUTDOWN_DEFAULT_MS;
        if (json_object_object_get_ex(o, "shutdown", &v)) {
                char path[80];
                snprintf(path, sizeof(path), "%s.shutdown", where);
                if (json_object_is_type(v, json_type_string)) {
                        if (!streq(json_object_get_string(v), "brutal_kill"))
                                return errmsg_invalid(ret_error, "%s: expected \"brutal_kill\" or milliseconds", path);
                        c->shutdown_ms = SHUTDOWN_BRUTAL_KILL;
                } else {
                        r = get_int(v, 0, SHUTDOWN_MAX_MS, path, &c->shutdown_ms, ret_error);
                        if (r < 0)
                                return r;
                }
        }

        if (json_object_object_get_ex(o, "start_timeout", &v)) {
                char path[80];
                snprintf(path, sizeof(path), "%s.start_timeout", where);
                r = get_int(v, 0, SHUTDOWN_MAX_MS, path, &c->start_timeout_ms, ret_error);
                if (r < 0)
                        return r;
        }

        if (json_object_object_get_ex(o, "significant", &v)) {
                if (!json_object_is_type(v, json_type_boolean))
                        return errmsg_invalid(ret_error, "%s.significant: expected true or false", where);
                c->significant = json_object_get_boolean(v);
        }

        size_t n_args = 0;
        if (json_object_object_get_ex(o, "args", &v)) {
                if (!json_object_is_type(v, json_type_array))
                        return errmsg_invalid(ret_error, "%s.args: expected an array of strings", where);
                n_args = json_object_array_length(v);
                if (n_args > MSG_STRV_MAX)
                        return errmsg_invalid(ret_error, "%s.args: at most %u elements", where, MSG_STRV_MAX);
        }
        c->args = calloc(n_args + 1, sizeof(char *));
        if (!c->args)
                return -ENOMEM;
        for (size_t i = 0; i < n_args; i++) {
                json_object *a = json_object_array_get_idx(v, i);
                if (!json_object_is_type(a, json_type_string))
                        return errmsg_invalid(ret_error, "%s.args[%zu]: expected a string", where, i);
                c->args[i] = strdup(json_object_get_string(a));
                if (!c->args[i])
                        return -ENOMEM;
        }

        if (json_object_object_get_ex(o, "config", &v)) {
                const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
                if (strlen(s) > MSG_TEXT_MAX)
                        return errmsg_invalid(ret_error, "%s.config: larger than %u bytes", where, MSG_TEXT_MAX);
                c->config_json = strdup(s);
        } else
                c->config_json = strdup("{}");
        if (!c->config_json)
                return -ENOMEM;
        return 0;
}

static int parse_tree(json_object *root, struct sup_spec *s, char **ret_error) {
        static const char *const keys[] = {"strategy", "intensity", "children", NULL};
        static const char *const ikeys[] = {"max_restarts", "max_seconds", NULL};
        json_object *v;
        int r;

        if (!json_object_is_type(root, json_type_object))
                return errmsg_invalid(ret_error, "spec: expected a JSON object");
        r = check_keys(root, keys, "", ret_error);
        if (r < 0)
                return r;

        if (json_object_object_get_ex(root, "strategy", &v)) {
                s->strategy = json_object_is_type(v, json_type_string)
                                      ? sup_strategy_from_string(json_object_get_string(v))
                                      : _STRATEGY_INVALID;
                if (s->strategy < 0)
                        return errmsg_invalid(ret_error,
                                              "strategy: expected one_for_one, one_for_all or rest_for_one");
        }

        if (json_object_object_get_ex(root, "intensity", &v)) {
                json_object *x;
                int64_t n;

                if (!json_object_is_type(v, json_type_object))
                        return errmsg_invalid(ret_error, "intensity: expected an object");
                r = check_keys(v, ikeys, "intensity", ret_error);
                if (r < 0)
                        return r;
                if (json_object_object_get_ex(v, "max_restarts", &x)) {
                        r = get_int(x, 0, RESTART_HISTORY_MAX - 1, "intensity.max_restarts", &n, ret_error);
                        if (r < 0)
                                return r;
                        s->intensity.max_restarts = (unsigned) n;
                }
                if (json_object_object_get_ex(v, "max_seconds", &x)) {
                        /* OTP refuses a period of 0: every restart would be "outside" it. */
                        r = get_int(x, 1, 24 * 3600, "intensity.max_seconds", &n, ret_error);
                        if (r < 0)
                                return r;
                        s->intensity.max_seconds = (unsigned) n;
                }
        }

        if (!json_object_object_get_ex(root, "children", &v) || !json_object_is_type(v, json_type_array))
                return errmsg_invalid(ret_error, "children: required, an array of child specs");
        size_t n = json_object_array_length(v);
        if (n == 0 || n > SUP_CHILDREN_MAX)
                return errmsg_invalid(ret_error, "children: expected 1..%u child specs", SUP_CHILDREN_MAX);
        s->children = calloc(n, sizeof(struct child_spec));
        if (!s->children)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                s->n_children = i + 1; /* so sup_spec_done() frees a partial child too */
                r = parse_child(json_object_array_get_idx(v, i), i, &s->children[i], ret_error);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (streq(s->children[j].id, s->children[i].id))
                                return errmsg_invalid(ret_error, "children[%zu].id: duplicate id \"%s\"", i,
                                                      s->children[i].id);
        }
        return 0;
}

int sup_spec_parse(const char *json, struct sup_spec *ret, char **ret_error) {
        struct sup_spec s;
        enum json_tokener_error jerr;
        json_object *root;
        int r;

        sup_spec_init(&s);
        root = json_tokener_parse_verbose(json, &jerr);
        if (!root)
                return errmsg_invalid(ret_error, "spec: not valid JSON: %s", json_tokener_error_desc(jerr));
        r = parse_tree(root, &s, ret_error);
        json_object_put(root);
        if (r < 0) {
                sup_spec_done(&s);
                return r;
        }
        *ret = s;
        return 0;
}
