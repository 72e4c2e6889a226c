/* SPDX-License-Identifier: MIT */
/*
 * qemu-qmp.c: QMP line framing and classification (see qemu-qmp.h). Pure.
 */
#include "macro.h"
#include "qemu-qmp.h"

/* clang-format off */
static const char *const kind_names[_QEMU_QMP_KIND_MAX] = {
        [QEMU_QMP_RESULT] = "result",
        [QEMU_QMP_EVENT] = "event",
        [QEMU_QMP_ERROR] = "error",
};
/* clang-format on */

const char *qemu_qmp_kind_to_string(enum qemu_qmp_kind k) {
        if (k < 0 || k >= _QEMU_QMP_KIND_MAX)
                return NULL;
        return kind_names[k];
}

void qemu_qmp_reader_init(struct qemu_qmp_reader *q, size_t max) {
        *q = (struct qemu_qmp_reader){.max = max > 0 ? max : QEMU_QMP_LINE_MAX};
}

void qemu_qmp_reader_done(struct qemu_qmp_reader *q) {
        free(q->line);
        q->line = NULL;
        q->len = 0;
}

int qemu_qmp_reader_feed(struct qemu_qmp_reader *q, const uint8_t *buf, size_t len, size_t *ret_consumed,
                         char **ret_line) {
        const uint8_t *nl = memchr(buf, '\n', len);
        size_t take = nl ? (size_t) (nl - buf) : len;

        *ret_consumed = nl ? take + 1 : len;
        if (q->overlong) {
                if (nl)
                        q->overlong = false;
                return 0;
        }
        if (take > q->max - q->len) {
                qemu_qmp_reader_done(q);
                q->overlong = !nl;
                return -E2BIG;
        }
        char *p = realloc(q->line, q->len + take + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p + q->len, buf, take);
        q->line = p;
        q->len += take;
        q->line[q->len] = 0;
        if (!nl)
                return 0;
        while (q->len > 0 && q->line[q->len - 1] == '\r')
                q->line[--q->len] = 0;
        *ret_line = TAKE_PTR(q->line);
        q->len = 0;
        return 1;
}

int qemu_qmp_classify(const char *line, enum qemu_qmp_kind *ret_kind, json_object **ret_obj) {
        json_tokener *tok;
        json_object *obj;
        enum json_tokener_error jerr;
        size_t n = strlen(line);

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        obj = json_tokener_parse_ex(tok, line, (int) MIN(n, (size_t) INT32_MAX));
        jerr = json_tokener_get_error(tok);
        /* Exactly one object and nothing but whitespace after it. */
        if (obj && jerr == json_tokener_success) {
                size_t off = json_tokener_get_parse_end(tok);
                for (; off < n; off++)
                        if (line[off] != ' ' && line[off] != '\t' && line[off] != '\r')
                                jerr = json_tokener_error_parse_unexpected;
        }
        json_tokener_free(tok);
        if (!obj || jerr != json_tokener_success || !json_object_is_type(obj, json_type_object)) {
                json_object_put(obj);
                return -EBADMSG;
        }
        if (json_object_object_get_ex(obj, "return", NULL) || json_object_object_get_ex(obj, "QMP", NULL))
                *ret_kind = QEMU_QMP_RESULT;
        else if (json_object_object_get_ex(obj, "event", NULL))
                *ret_kind = QEMU_QMP_EVENT;
        else
                *ret_kind = QEMU_QMP_ERROR;
        *ret_obj = obj;
        return 0;
}
