/* SPDX-License-Identifier: MIT */
/*
 * qemu-qmp.h owns QMP's wire format as the reference driver reads it (§2.5):
 * one JSON object per line; a line with "return" or "QMP" is a result, one
 * with "event" an asynchronous event, anything else an error reply. Line
 * framing is bounded; parsing uses json-c. Pure code.
 */
#pragma once

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#define QEMU_QMP_LINE_MAX (1024u * 1024u)

enum qemu_qmp_kind {
        QEMU_QMP_RESULT,
        QEMU_QMP_EVENT,
        QEMU_QMP_ERROR,
        _QEMU_QMP_KIND_MAX,
        _QEMU_QMP_KIND_INVALID = -22,
};

struct qemu_qmp_reader {
        char *line;
        size_t len;
        size_t max;
        bool overlong; /* discarding the rest of a line that exceeded max */
};

void qemu_qmp_reader_init(struct qemu_qmp_reader *q, size_t max);
void qemu_qmp_reader_done(struct qemu_qmp_reader *q);

/* Eat bytes up to the end of one line. Returns 1 and a malloc'd NUL-terminated
 * line (without '\n', '\r' stripped) in *ret_line when one is complete, 0 when
 * more bytes are needed, -E2BIG once for a line beyond max (the rest of it is
 * then skipped). *ret_consumed says how many bytes were used. */
int qemu_qmp_reader_feed(struct qemu_qmp_reader *q, const uint8_t *buf, size_t len, size_t *ret_consumed,
                         char **ret_line);

/* Parse and classify one line; *ret_obj (a new reference) is the object. */
int qemu_qmp_classify(const char *line, enum qemu_qmp_kind *ret_kind, json_object **ret_obj);

const char *qemu_qmp_kind_to_string(enum qemu_qmp_kind k);
