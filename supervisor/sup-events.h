/* SPDX-License-Identifier: MIT */
/*
 * sup-events.h: lifecycle events (journal, timeline.jsonl, the front end's
 * progress hook) and sd_notify lines.
 */
#pragma once

#include "log.h"

struct sup;
struct child;

/* One lifecycle event: journald/stderr via log_event() and a timeline line.
 * @c is NULL for the tree's own. @kv is NULL or alternating key/value strings,
 * NULL-terminated; keys are the lower-case timeline names ("pid"), journald
 * gets VIGIL_<UPPER>=value. */
void events_emit_at(const struct log_location *at, struct sup *s, struct child *c, int prio, enum log_event ev,
                    const char *name, const char *const *kv, const char *fmt, ...) _printf_(8, 9);
/* CODE_FILE/LINE/FUNC in the journal name the caller, not events_emit_at(). */
#define events_emit(...) events_emit_at(LOG_HERE, __VA_ARGS__)

/* One sd_notify line (or a line on the PID namespace's relay). */
void events_notify(struct sup *s, const char *line);
/* STATUS= (children, current subtest) and READY=1 once all children are up. */
void events_notify_status(struct sup *s);
