/* SPDX-License-Identifier: MIT */
/*
 * log.c owns where log entries go and what fields they carry. One process
 * has one identifier and a small set of context fields; each entry adds its
 * priority, message, optional errno, optional lifecycle event (with a stable
 * MESSAGE_ID) and extra fields. journald gets them as structured fields;
 * stderr gets one readable line with the same fields appended. A journal
 * socket that exists but refuses entries (nobody listening, as in many
 * containers and sandboxes) sends this process to stderr from its first failed
 * send on, said once, so no line is lost to a dead socket. How a line reaches
 * stderr (at once, or bounded and never blocking) is log-stderr.c's.
 */
#include <pthread.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/uio.h>
/* CODE_FILE/LINE/FUNC come from the caller (struct log_location), not from here. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#include "log-stderr.h"
#include "log.h"

#define LOG_FIELDS_MAX 12
#define JOURNAL_SOCKET "/run/systemd/journal/socket"

struct log_event_info {
        const char *name;
        const char *message_id;
};

/* MESSAGE_IDs were drawn once at random (like systemd's) and are stable: never
 * change one once released; each has an entry in docs/vigil.catalog
 * (test-log-ids checks both). */
static const struct log_event_info events[_LOG_EVENT_MAX] = {
        [LOG_EVENT_NONE] = {NULL, NULL},
        [LOG_EVENT_SPAWNED] = {"spawned", "cd7d2c9b20984819ae2223bc369ca069"},
        [LOG_EVENT_READY] = {"ready", "d4e0f540ebc04b9bb248ff412654d6bd"},
        [LOG_EVENT_EXITED] = {"exited", "9b2f938c419340179ee7f60c544bd838"},
        [LOG_EVENT_RESTARTED] = {"restarted", "42ee0b766d3d49389d4cfce2f238b19b"},
        [LOG_EVENT_GAVE_UP] = {"gave_up", "fec410e9823848a6acb3a7c98de98674"},
        [LOG_EVENT_TIMEOUT] = {"timeout", "49416504f72e4afe9b08df8bac4a121c"},
        [LOG_EVENT_SUBTEST_BEGIN] = {"subtest_begin", "b387c5ad97764e5c8e99ff8a75b301e9"},
        [LOG_EVENT_SUBTEST_END] = {"subtest_end", "19378480ecb349deb0d475c98cfe6661"},
        [LOG_EVENT_PROTOCOL_ERROR] = {"protocol_error", "ad9ba76ed83f452fa3fd4f82d0d44cce"},
        [LOG_EVENT_RUN_BEGIN] = {"run_begin", "f82df3ccc63741d78f480eec1ae700a2"},
        [LOG_EVENT_RUN_END] = {"run_end", "92db468e122549689d1d0df60183da91"},
        [LOG_EVENT_COMMAND] = {"command", "ba617846a3754988b266f475ef78827e"},
        [LOG_EVENT_CONSOLE] = {"console", "175498a5e66d4df3a17d7a4216e26d1a"},
        [LOG_EVENT_KILLED] = {"killed", "5b12246e63d04077895f027c1bbba739"},
        [LOG_EVENT_MACHINE_FAILED] = {"machine_failed", "a2325ab1120a4142a73ec36bccb60052"},
        [LOG_EVENT_TEST_FAILED] = {"test_failed", "863293038f92483ca3f4b632178b894d"},
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

const char *log_code_file(const char *file) {
        while (file && (strncmp(file, "../", 3) == 0 || strncmp(file, "./", 2) == 0))
                file += file[1] == '.' ? 3 : 2;
        return file;
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
static int write_journal(const struct log_location *at, int prio, int error, enum log_event ev,
                         const char *const *extra, const char *msg) {
        struct iovec iov[LOG_FIELDS_MAX + 40];
        char *owned[12] = {};
        int n = 0, k = 0;

        if (asprintf(&owned[k], "MESSAGE=%s", msg) >= 0)
                n = add_iov(iov, n, ELEMENTSOF(iov), owned[k++]);
        if (asprintf(&owned[k], "PRIORITY=%d", prio) >= 0)
                n = add_iov(iov, n, ELEMENTSOF(iov), owned[k++]);
        if (asprintf(&owned[k], "SYSLOG_IDENTIFIER=%s", state.identifier) >= 0)
                n = add_iov(iov, n, ELEMENTSOF(iov), owned[k++]);
        if (at && asprintf(&owned[k], "CODE_FILE=%s", log_code_file(at->file)) >= 0)
                n = add_iov(iov, n, ELEMENTSOF(iov), owned[k++]);
        if (at && asprintf(&owned[k], "CODE_LINE=%d", at->line) >= 0)
                n = add_iov(iov, n, ELEMENTSOF(iov), owned[k++]);
        if (at && asprintf(&owned[k], "CODE_FUNC=%s", at->func) >= 0)
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
        log_stderr_write(line, len);
}

static int log_emitv(const struct log_location *at, bool tee, int prio, int error, enum log_event ev,
                     const char *const *extra, const char *fmt, va_list ap) {
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
                r = write_journal(at, prio, error, ev, extra, msg);
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

int log_internalv_at(const struct log_location *at, int prio, int error, enum log_event ev, const char *const *extra,
                     const char *fmt, va_list ap) {
        return log_emitv(at, false, prio, error, ev, extra, fmt, ap);
}

int log_tee_at(const struct log_location *at, int prio, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = log_emitv(at, true, prio, 0, LOG_EVENT_NONE, NULL, fmt, ap);
        va_end(ap);
        return r;
}

int log_internal_at(const struct log_location *at, int prio, int error, enum log_event ev, const char *const *extra,
                    const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = log_internalv_at(at, prio, error, ev, extra, fmt, ap);
        va_end(ap);
        return r;
}
