/* SPDX-License-Identifier: MIT */
/*
 * log.c owns where log entries go and what fields they carry. One process
 * has one identifier and a small set of context fields; each entry adds its
 * priority, message, optional errno, optional lifecycle event (with a stable
 * MESSAGE_ID) and extra fields. journald gets them as structured fields;
 * stderr gets one readable line with the same fields appended. A journal
 * socket that exists but refuses entries (nobody listening, as in many
 * containers and sandboxes) sends this process to stderr from its first failed
 * send on, said once, so no line is lost to a dead socket.
 */
#include <pthread.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "log.h"

#define LOG_FIELDS_MAX 12
#define JOURNAL_SOCKET "/run/systemd/journal/socket"

struct log_event_info {
        const char *name;
        const char *message_id;
};

/* MESSAGE_IDs are stable: never change one once released. */
static const struct log_event_info events[_LOG_EVENT_MAX] = {
        [LOG_EVENT_NONE] = {NULL, NULL},
        [LOG_EVENT_SPAWNED] = {"spawned", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e11"},
        [LOG_EVENT_READY] = {"ready", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e12"},
        [LOG_EVENT_EXITED] = {"exited", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e13"},
        [LOG_EVENT_RESTARTED] = {"restarted", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e14"},
        [LOG_EVENT_GAVE_UP] = {"gave_up", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e15"},
        [LOG_EVENT_TIMEOUT] = {"timeout", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e16"},
        [LOG_EVENT_SUBTEST_BEGIN] = {"subtest_begin", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e17"},
        [LOG_EVENT_SUBTEST_END] = {"subtest_end", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e18"},
        [LOG_EVENT_PROTOCOL_ERROR] = {"protocol_error", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e19"},
        [LOG_EVENT_RUN_BEGIN] = {"run_begin", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e1a"},
        [LOG_EVENT_RUN_END] = {"run_end", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e1b"},
        [LOG_EVENT_COMMAND] = {"command", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e1c"},
        [LOG_EVENT_CONSOLE] = {"console", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e1d"},
        [LOG_EVENT_KILLED] = {"killed", "5b1c2a0e8f7d4c1a9e3b6d2f0a4c8e1e"},
};

static struct {
        char identifier[64];
        bool journal;
        bool level_explicit; /* VIGIL_LOG_LEVEL or log_set_max_level() chose the level */
        int max_level;
        char *fields[LOG_FIELDS_MAX]; /* "NAME=value" */
        pthread_mutex_t lock;
} state = {
        .identifier = "vigil",
        .max_level = LOG_INFO,
        .lock = PTHREAD_MUTEX_INITIALIZER,
};

const char *log_event_to_string(enum log_event ev) {
        return ev >= 0 && ev < _LOG_EVENT_MAX ? events[ev].name : NULL;
}

const char *log_event_message_id(enum log_event ev) {
        return ev >= 0 && ev < _LOG_EVENT_MAX ? events[ev].message_id : NULL;
}

static bool journal_reachable(void) {
        return access(JOURNAL_SOCKET, W_OK) == 0;
}

static int level_from_string(const char *s) {
        static const char *const names[] = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"};

        for (size_t i = 0; s && i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int) i;
        return -1;
}

void log_open(const char *identifier, enum log_target target) {
        const char *env = getenv("VIGIL_LOG_TARGET");
        int lvl = level_from_string(getenv("VIGIL_LOG_LEVEL"));

        if (identifier)
                snprintf(state.identifier, sizeof(state.identifier), "%s", identifier);
        if (target == LOG_TARGET_AUTO && env)
                target = streq(env, "journal")  ? LOG_TARGET_JOURNAL
                         : streq(env, "stderr") ? LOG_TARGET_STDERR
                                                : LOG_TARGET_AUTO;
        state.journal = target == LOG_TARGET_JOURNAL || (target == LOG_TARGET_AUTO && journal_reachable());
        if (lvl >= 0) {
                state.max_level = lvl;
                state.level_explicit = true;
        }
}

void log_set_max_level(int prio) {
        state.max_level = prio;
        state.level_explicit = true;
}

int log_get_max_level(void) {
        return state.max_level;
}

bool log_to_journal(void) {
        return state.journal;
}

void log_set_field(const char *name, const char *value) {
        size_t nl = strlen(name);
        int free_slot = -1;

        pthread_mutex_lock(&state.lock);
        for (int i = 0; i < LOG_FIELDS_MAX; i++) {
                if (!state.fields[i]) {
                        if (free_slot < 0)
                                free_slot = i;
                        continue;
                }
                if (strncmp(state.fields[i], name, nl) == 0 && state.fields[i][nl] == '=') {
                        free(state.fields[i]);
                        state.fields[i] = NULL;
                        if (free_slot < 0)
                                free_slot = i;
                }
        }
        if (value && free_slot >= 0 && asprintf(&state.fields[free_slot], "%s=%s", name, value) < 0)
                state.fields[free_slot] = NULL;
        pthread_mutex_unlock(&state.lock);
}

static int add_iov(struct iovec *iov, int n, int max, char *s) {
        if (!s || n >= max)
                return n;
        iov[n++] = (struct iovec){.iov_base = s, .iov_len = strlen(s)};
        return n;
}

static void write_stderr(int prio, enum log_event ev, const char *const *extra, const char *msg);

/* The first refused entry moves this process to stderr for good, and the
 * level to what vigil uses on stderr (notice) unless one was chosen. */
static void journal_failed(int r) {
        char note[256];

        state.journal = false;
        if (!state.level_explicit && state.max_level > LOG_NOTICE)
                state.max_level = LOG_NOTICE;
        snprintf(note, sizeof(note), "journald at %s refused an entry (%s): logging to stderr from now on",
                 JOURNAL_SOCKET, strerror(-r));
        write_stderr(LOG_WARNING, LOG_EVENT_NONE, NULL, note);
}

/* Returns sd_journal_sendv()'s result: < 0 if the entry did not reach journald. */
static int write_journal(int prio, int error, enum log_event ev, const char *const *extra, const char *msg) {
        struct iovec iov[LOG_FIELDS_MAX + 40];
        char *owned[8] = {};
        int n = 0, k = 0;

        if (asprintf(&owned[k], "MESSAGE=%s", msg) >= 0)
                n = add_iov(iov, n, ELEMENTSOF(iov), owned[k++]);
        if (asprintf(&owned[k], "PRIORITY=%d", prio) >= 0)
                n = add_iov(iov, n, ELEMENTSOF(iov), owned[k++]);
        if (asprintf(&owned[k], "SYSLOG_IDENTIFIER=%s", state.identifier) >= 0)
                n = add_iov(iov, n, ELEMENTSOF(iov), owned[k++]);
        if (error && asprintf(&owned[k], "ERRNO=%d", error < 0 ? -error : error) >= 0)
                n = add_iov(iov, n, ELEMENTSOF(iov), owned[k++]);
        if (log_event_to_string(ev)) {
                if (asprintf(&owned[k], "VIGIL_EVENT=%s", log_event_to_string(ev)) >= 0)
                        n = add_iov(iov, n, ELEMENTSOF(iov), owned[k++]);
                if (asprintf(&owned[k], "MESSAGE_ID=%s", log_event_message_id(ev)) >= 0)
                        n = add_iov(iov, n, ELEMENTSOF(iov), owned[k++]);
        }
        for (int i = 0; i < LOG_FIELDS_MAX; i++)
                n = add_iov(iov, n, ELEMENTSOF(iov), state.fields[i]);
        for (size_t i = 0; extra && extra[i]; i++)
                n = add_iov(iov, n, ELEMENTSOF(iov), (char *) extra[i]);

        int r = sd_journal_sendv(iov, n);
        for (int i = 0; i < k; i++)
                free(owned[i]);
        return r;
}

static void write_stderr(int prio, enum log_event ev, const char *const *extra, const char *msg) {
        char line[8192];
        size_t len = 0;

#define APPEND(...)                                                                                                   \
        do {                                                                                                          \
                int _w = snprintf(line + len, sizeof(line) - len, __VA_ARGS__);                                       \
                if (_w > 0)                                                                                           \
                        len = MIN(len + (size_t) _w, sizeof(line) - 1);                                               \
        } while (0)

        APPEND("%s[%d]: %s%s", state.identifier, (int) getpid(),
               prio <= LOG_WARNING ? (prio <= LOG_ERR ? "error: " : "warning: ") : "", msg);
        if (log_event_to_string(ev) || (extra && extra[0])) {
                APPEND("  {");
                if (log_event_to_string(ev))
                        APPEND(" VIGIL_EVENT=%s", log_event_to_string(ev));
                for (int i = 0; i < LOG_FIELDS_MAX; i++)
                        if (state.fields[i] && strncmp(state.fields[i], "VIGIL_RUN=", 10) != 0)
                                APPEND(" %s", state.fields[i]);
                for (size_t i = 0; extra && extra[i]; i++)
                        APPEND(" %s", extra[i]);
                APPEND(" }");
        }
#undef APPEND
        line[len++] = '\n';
        (void) !write(STDERR_FILENO, line, len);
}

static int log_emitv(bool tee, int prio, int error, enum log_event ev, const char *const *extra, const char *fmt,
                     va_list ap) {
        int saved = errno, r;
        char msg[4096];

        if (prio > state.max_level && !tee)
                goto out;

        vsnprintf(msg, sizeof(msg), fmt, ap);
        if (error) {
                size_t l = strlen(msg);
                snprintf(msg + l, sizeof(msg) - l, ": %s", strerror(error < 0 ? -error : error));
        }

        pthread_mutex_lock(&state.lock);
        if (state.journal && (prio <= state.max_level || !tee)) {
                r = write_journal(prio, error, ev, extra, msg);
                if (r < 0)
                        journal_failed(r);
                else if (!tee)
                        goto unlock;
        }
        write_stderr(prio, ev, extra, msg);
unlock:
        pthread_mutex_unlock(&state.lock);
out:
        errno = saved;
        return error == 0 ? 0 : error < 0 ? error : -error;
}

int log_internalv(int prio, int error, enum log_event ev, const char *const *extra, const char *fmt, va_list ap) {
        return log_emitv(false, prio, error, ev, extra, fmt, ap);
}

int log_tee(int prio, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = log_emitv(true, prio, 0, LOG_EVENT_NONE, NULL, fmt, ap);
        va_end(ap);
        return r;
}

int log_internal(int prio, int error, enum log_event ev, const char *const *extra, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = log_internalv(prio, error, ev, extra, fmt, ap);
        va_end(ap);
        return r;
}
