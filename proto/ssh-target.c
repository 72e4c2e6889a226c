/* SPDX-License-Identifier: MIT */
/*
 * ssh-target.c: SSH targets, parsed and checked (see ssh-target.h). Pure.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "ssh-target.h"

/* clang-format off */
static const char *const known_hosts_names[_SSH_KNOWN_HOSTS_MAX] = {
        [SSH_KNOWN_HOSTS_STRICT] = "strict",
        [SSH_KNOWN_HOSTS_ACCEPT_NEW] = "accept-new",
        [SSH_KNOWN_HOSTS_FILE] = "file",
};

/* Options vigil sets for its own reasons; a user's "options" may not change them. */
static const char *const reserved_options[] = {
        "BatchMode", "ControlMaster", "ControlPath", "ControlPersist", "PasswordAuthentication",
        "KbdInteractiveAuthentication", "StrictHostKeyChecking", "UserKnownHostsFile", "GlobalKnownHostsFile",
        "RequestTTY", "EscapeChar", "ProxyJump", "IdentityFile", "Port", "User", "HostName", NULL,
};

static const char *const json_keys[] = {
        "host", "user", "port", "identity_file", "known_hosts", "proxy_jump", "options", "connect_timeout_s", NULL,
};
/* clang-format on */

const char *ssh_known_hosts_to_string(enum ssh_known_hosts k) {
        if (k < 0 || k >= _SSH_KNOWN_HOSTS_MAX)
                return NULL;
        return known_hosts_names[k];
}

_printf_(3, 4) static int bad(char *error, size_t size, const char *fmt, ...) {
        va_list ap;

        if (size > 0) {
                va_start(ap, fmt);
                (void) vsnprintf(error, size, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

/* Host names (letters, digits, '.', '-', '_'), IPv4, or an IPv6 address
 * (hex digits, ':' and '.'), never starting with '-' (ssh would take it for
 * an option). */
bool ssh_host_valid(const char *s) {
        size_t n = strlen(s);
        bool colon = strchr(s, ':') != NULL;

        if (n == 0 || n > 253 || s[0] == '-' || s[0] == '.')
                return false;
        for (; *s; s++) {
                unsigned char ch = (unsigned char) *s;
                if (colon ? !(isxdigit(ch) || ch == ':' || ch == '.') : !(isalnum(ch) || strchr(".-_", ch)))
                        return false;
        }
        return true;
}

/* POSIX portable user names (and what useradd accepts): no '@', ':' or blanks. */
bool ssh_user_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 32 || s[0] == '-')
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("._-", *s))
                        return false;
        return true;
}

/* ProxyJump: "[user@]host[:port]" hops joined by ',', or "none". */
static bool proxy_jump_valid(const char *s) {
        if (!*s || s[0] == '-' || strlen(s) > 1024)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr(".-_@:,[]", *s))
                        return false;
        return true;
}

static int parse_port(const char *s, unsigned *ret) {
        char *end;
        unsigned long v;

        if (!isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end || v < 1 || v > 65535)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

int ssh_target_parse_address(const char *s, struct ssh_target *ret, char *error, size_t error_size) {
        _cleanup_free_ char *user = NULL, *host = NULL;
        const char *at = strchr(s, '@'), *h = s, *port = NULL;
        unsigned p = 0;

        if (at) {
                if (!(user = strndup(s, (size_t) (at - s))))
                        return -ENOMEM;
                if (!ssh_user_valid(user))
                        return bad(error, error_size,
                                   "\"%s\": \"%s\" is not a user name (letters, digits, '.', '_', '-')", s, user);
                h = at + 1;
        }
        if (h[0] == '[') {
                const char *close = strchr(h, ']');
                if (!close)
                        return bad(error, error_size, "\"%s\": '[' without ']' around an IPv6 address", s);
                if (!(host = strndup(h + 1, (size_t) (close - h - 1))))
                        return -ENOMEM;
                if (close[1] == ':')
                        port = close + 2;
                else if (close[1])
                        return bad(error, error_size, "\"%s\": unexpected \"%s\" after the address", s, close + 1);
        } else {
                const char *colon = strchr(h, ':');
                if (colon && strchr(colon + 1, ':'))
                        return bad(error, error_size, "\"%s\": an IPv6 address goes in brackets: [%s]", s, h);
                if (!(host = colon ? strndup(h, (size_t) (colon - h)) : strdup(h)))
                        return -ENOMEM;
                if (colon)
                        port = colon + 1;
        }
        if (!ssh_host_valid(host))
                return bad(error, error_size, "\"%s\": \"%s\" is not a host name or address", s, host);
        if (port && parse_port(port, &p) < 0)
                return bad(error, error_size, "\"%s\": port \"%s\" is not a number in 1..65535", s, port);
        free(ret->user);
        free(ret->host);
        ret->user = TAKE_PTR(user);
        ret->host = TAKE_PTR(host);
        ret->port = p;
        return 0;
}

void ssh_target_done(struct ssh_target *t) {
        free(t->user);
        free(t->host);
        free(t->identity_file);
        free(t->known_hosts_file);
        free(t->proxy_jump);
        strv_free(t->options);
        *t = (struct ssh_target){};
}

static int json_str(json_object *o, const char *key, const char **ret, char *error, size_t size) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return 0;
        if (!json_object_is_type(v, json_type_string))
                return bad(error, size, "ssh: \"%s\" must be a string", key);
        *ret = json_object_get_string(v);
        return 0;
}

static int json_uint(json_object *o, const char *key, uint64_t *ret, char *error, size_t size) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return 0;
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1)
                return bad(error, size, "ssh: \"%s\" must be a positive integer", key);
        *ret = (uint64_t) json_object_get_int64(v);
        return 0;
}

static bool option_reserved(const char *opt) {
        size_t n = strcspn(opt, "= \t");

        for (size_t i = 0; reserved_options[i]; i++)
                if (strlen(reserved_options[i]) == n && strncasecmp(reserved_options[i], opt, n) == 0)
                        return true;
        return false;
}

/* The options as borrowed strings; NULL-terminated, *ret malloc'd. */
static int json_options(json_object *o, const char ***ret, char *error, size_t size) {
        json_object *arr;
        const char **v;
        size_t n;

        if (!json_object_object_get_ex(o, "options", &arr) || json_object_is_type(arr, json_type_null))
                return 0;
        if (!json_object_is_type(arr, json_type_array))
                return bad(error, size, "ssh: \"options\" must be a list of \"Key=Value\" strings");
        n = json_object_array_length(arr);
        if (n > SSH_OPTIONS_MAX)
                return bad(error, size, "ssh: \"options\" has %zu entries (at most %u)", n, SSH_OPTIONS_MAX);
        if (!(v = calloc(n + 1, sizeof *v)))
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(arr, i);
                if (!json_object_is_type(e, json_type_string)) {
                        free(v);
                        return bad(error, size, "ssh: options[%zu] must be a \"Key=Value\" string", i);
                }
                v[i] = json_object_get_string(e);
        }
        *ret = v;
        return 0;
}

int ssh_target_make(const struct ssh_settings *in, struct ssh_target *ret, char *error, size_t error_size) {
        struct ssh_target t = {.port = (unsigned) in->port};
        const char *kh = in->known_hosts;
        size_t n_opts = 0;

        if (!in->host)
                return bad(error, error_size, "ssh: missing \"host\"");
        if (!ssh_host_valid(in->host))
                return bad(error, error_size, "ssh: \"host\" \"%s\" is not a host name or address", in->host);
        if (in->user && !ssh_user_valid(in->user))
                return bad(error, error_size, "ssh: \"user\" \"%s\" is not a user name", in->user);
        if (in->port > 65535)
                return bad(error, error_size, "ssh: \"port\" must be an integer in 1..65535");
        if (in->connect_timeout_s > 3600)
                return bad(error, error_size, "ssh: \"connect_timeout_s\" must be an integer in 1..3600");
        if (in->identity_file && in->identity_file[0] != '/')
                return bad(error, error_size, "ssh: \"identity_file\" must be an absolute path, not \"%s\"",
                           in->identity_file);
        if (in->proxy_jump && !proxy_jump_valid(in->proxy_jump))
                return bad(error, error_size, "ssh: \"proxy_jump\" \"%s\" is not [user@]host[:port][,...]",
                           in->proxy_jump);
        if (!kh || streq(kh, "strict"))
                t.known_hosts = SSH_KNOWN_HOSTS_STRICT;
        else if (streq(kh, "accept-new"))
                t.known_hosts = SSH_KNOWN_HOSTS_ACCEPT_NEW;
        else if (kh[0] == '/')
                t.known_hosts = SSH_KNOWN_HOSTS_FILE;
        else
                return bad(error, error_size,
                           "ssh: \"known_hosts\" must be \"strict\", \"accept-new\" or an absolute path, not \"%s\"",
                           kh);
        for (; in->options && in->options[n_opts]; n_opts++) {
                const char *o = in->options[n_opts];
                if (!strchr(o, '=') || o[0] == '-' || o[0] == '=' || strlen(o) > 1024)
                        return bad(error, error_size, "ssh: options[%zu] must be a \"Key=Value\" string", n_opts);
                if (option_reserved(o))
                        return bad(error, error_size,
                                   "ssh: options[%zu] \"%.*s\" is set by vigil (BatchMode, ControlMaster and the "
                                   "known_hosts policy are part of the contract; use the ssh keys for the rest)",
                                   n_opts, (int) strcspn(o, "= \t"), o);
        }
        if (n_opts > SSH_OPTIONS_MAX)
                return bad(error, error_size, "ssh: \"options\" has %zu entries (at most %u)", n_opts,
                           SSH_OPTIONS_MAX);
        t.connect_timeout_s = in->connect_timeout_s ? (unsigned) in->connect_timeout_s : SSH_CONNECT_TIMEOUT_DEFAULT;
        if (!(t.host = strdup(in->host)) || (in->user && !(t.user = strdup(in->user))) ||
            (in->identity_file && !(t.identity_file = strdup(in->identity_file))) ||
            (t.known_hosts == SSH_KNOWN_HOSTS_FILE && !(t.known_hosts_file = strdup(kh))) ||
            (in->proxy_jump && !(t.proxy_jump = strdup(in->proxy_jump))) ||
            !(t.options = calloc(n_opts + 1, sizeof *t.options)))
                goto oom;
        for (size_t i = 0; i < n_opts; i++)
                if (!(t.options[i] = strdup(in->options[i])))
                        goto oom;
        *ret = t;
        return 0;
oom:
        ssh_target_done(&t);
        return -ENOMEM;
}

int ssh_target_from_json(json_object *o, struct ssh_target *ret, char *error, size_t error_size) {
        struct ssh_settings in = {};
        _cleanup_free_ const char **options = NULL;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return bad(error, error_size, "ssh: not a JSON object");
        json_object_object_foreach(o, key, val) {
                bool known = false;
                (void) val;
                for (size_t i = 0; json_keys[i]; i++)
                        known = known || streq(json_keys[i], key);
                if (!known)
                        return bad(error, error_size, "ssh: unknown key \"%s\"", key);
        }
        if ((r = json_str(o, "host", &in.host, error, error_size)) < 0 ||
            (r = json_str(o, "user", &in.user, error, error_size)) < 0 ||
            (r = json_uint(o, "port", &in.port, error, error_size)) < 0 ||
            (r = json_str(o, "identity_file", &in.identity_file, error, error_size)) < 0 ||
            (r = json_str(o, "known_hosts", &in.known_hosts, error, error_size)) < 0 ||
            (r = json_str(o, "proxy_jump", &in.proxy_jump, error, error_size)) < 0 ||
            (r = json_options(o, &options, error, error_size)) < 0 ||
            (r = json_uint(o, "connect_timeout_s", &in.connect_timeout_s, error, error_size)) < 0)
                return r;
        if (in.port > 65535)
                return bad(error, error_size, "ssh: \"port\" must be an integer in 1..65535");
        in.options = (char *const *) options;
        return ssh_target_make(&in, ret, error, error_size);
}
