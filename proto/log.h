/* SPDX-License-Identifier: MIT */
/*
 * log.h: structured logging for every vigil process. Entries go to journald
 * when /run/systemd/journal/socket exists (or VIGIL_LOG=journal), else to
 * stderr as one human line per entry followed by its fields; the first entry
 * journald refuses moves the process to stderr for good (said once). Context fields
 * (VIGIL_RUN, VIGIL_MACHINE, ...) are set once per process and added to every
 * entry. Lifecycle events carry a stable MESSAGE_ID from the table in log.c,
 * explained for `journalctl -x` by docs/vigil.catalog; every entry carries
 * CODE_FILE/CODE_LINE/CODE_FUNC of the macro call that made it.
 */
#pragma once

#include <stdarg.h>
#include <syslog.h>

#include "macro.h"

enum log_event {
        LOG_EVENT_NONE,
        LOG_EVENT_SPAWNED,
        LOG_EVENT_READY,
        LOG_EVENT_EXITED,
        LOG_EVENT_RESTARTED,
        LOG_EVENT_GAVE_UP,
        LOG_EVENT_TIMEOUT,
        LOG_EVENT_SUBTEST_BEGIN,
        LOG_EVENT_SUBTEST_END,
        LOG_EVENT_PROTOCOL_ERROR,
        LOG_EVENT_RUN_BEGIN,
        LOG_EVENT_RUN_END,
        LOG_EVENT_COMMAND,
        LOG_EVENT_CONSOLE,
        LOG_EVENT_KILLED,
        LOG_EVENT_MACHINE_FAILED,
        LOG_EVENT_TEST_FAILED,
        _LOG_EVENT_MAX,
};

enum log_target {
        LOG_TARGET_AUTO,
        LOG_TARGET_JOURNAL,
        LOG_TARGET_STDERR,
};

/* Call once at start: identifier becomes SYSLOG_IDENTIFIER. */
void log_open(const char *identifier, enum log_target target);
/* Set (or with value NULL, clear) a context field added to every entry, e.g.
 * log_set_field("VIGIL_MACHINE", "server"). Names must be journald-valid. */
void log_set_field(const char *name, const char *value);
void log_set_max_level(int prio);
int log_get_max_level(void);
bool log_to_journal(void);

/* Where an entry was made: CODE_FILE/CODE_LINE/CODE_FUNC in the journal. */
struct log_location {
        const char *file;
        int line;
        const char *func;
};
#define LOG_HERE (&(const struct log_location){__FILE__, __LINE__, __func__})

/* Core: @extra is NULL or a NULL-terminated list of "NAME=value" strings.
 * Returns -abs(error) if error != 0, else 0, so it composes with return. */
int log_internal_at(const struct log_location *at, int prio, int error, enum log_event ev, const char *const *extra,
                    const char *fmt, ...) _printf_(6, 7);
int log_internalv_at(const struct log_location *at, int prio, int error, enum log_event ev, const char *const *extra,
                     const char *fmt, va_list ap) _printf_(6, 0);
#define log_internal(...) log_internal_at(LOG_HERE, __VA_ARGS__)

/* For the few lines a user must see whatever the target and level (a run's
 * summary): to the journal as usual, and to stderr always. */
int log_tee_at(const struct log_location *at, int prio, const char *fmt, ...) _printf_(3, 4);
#define log_tee(...) log_tee_at(LOG_HERE, __VA_ARGS__)

/* CODE_FILE as recorded: @file without the build directory's leading "../" and "./". */
const char *log_code_file(const char *file);

const char *log_event_to_string(enum log_event ev);
const char *log_event_message_id(enum log_event ev);

#define log_debug(...)   log_internal(LOG_DEBUG, 0, LOG_EVENT_NONE, NULL, __VA_ARGS__)
#define log_info(...)    log_internal(LOG_INFO, 0, LOG_EVENT_NONE, NULL, __VA_ARGS__)
#define log_notice(...)  log_internal(LOG_NOTICE, 0, LOG_EVENT_NONE, NULL, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, 0, LOG_EVENT_NONE, NULL, __VA_ARGS__)
#define log_error(...)   log_internal(LOG_ERR, 0, LOG_EVENT_NONE, NULL, __VA_ARGS__)
/* Appends ": <strerror(-r)>" and returns r (negative). */
#define log_error_errno(r, ...)   log_internal(LOG_ERR, (r), LOG_EVENT_NONE, NULL, __VA_ARGS__)
#define log_warning_errno(r, ...) log_internal(LOG_WARNING, (r), LOG_EVENT_NONE, NULL, __VA_ARGS__)
#define log_debug_errno(r, ...)   log_internal(LOG_DEBUG, (r), LOG_EVENT_NONE, NULL, __VA_ARGS__)
/* A lifecycle event with extra fields. */
#define log_event(prio, ev, extra, ...) log_internal((prio), 0, (ev), (extra), __VA_ARGS__)
