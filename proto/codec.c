/* SPDX-License-Identifier: MIT */
/*
 * codec.c owns the translation between message body structs and msgpack.
 * It knows nothing about individual messages: it walks the field list of the
 * type's msg_info row, so every body is encoded and checked the same way.
 * Decoding is all-or-nothing: a partially decoded body is freed and zeroed.
 * A body may end before its trailing optional fields, which then stay zero.
 */
#include <stdint.h>

#include "codec.h"
#include "macro.h"

static void *field_ptr(void *body, const struct msg_field *f) {
        return (uint8_t *) body + f->offset;
}

static const void *field_cptr(const void *body, const struct msg_field *f) {
        return (const uint8_t *) body + f->offset;
}

static int pack_str(msgpack_packer *pk, const char *s, size_t max) {
        size_t n;

        s = s ?: "";
        n = strlen(s);
        if (max && n > max)
                return -E2BIG;
        if (msgpack_pack_str(pk, n) < 0 || msgpack_pack_str_body(pk, s, n) < 0)
                return -ENOMEM;
        return 0;
}

static int pack_field(msgpack_packer *pk, const struct msg_field *f, const void *body) {
        const void *p = field_cptr(body, f);
        int r = 0;

        switch (f->type) {
        case FIELD_U64:
                r = msgpack_pack_uint64(pk, *(const uint64_t *) p);
                break;
        case FIELD_I64:
                r = msgpack_pack_int64(pk, *(const int64_t *) p);
                break;
        case FIELD_BOOL:
                r = *(const bool *) p ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
                break;
        case FIELD_STR:
                return pack_str(pk, *(char *const *) p, f->max);
        case FIELD_BIN: {
                const struct msg_bytes *b = p;
                if (f->max && b->len > f->max)
                        return -E2BIG;
                if (msgpack_pack_bin(pk, b->len) < 0 || msgpack_pack_bin_body(pk, b->data, b->len) < 0)
                        return -ENOMEM;
                return 0;
        }
        case FIELD_STRV: {
                char *const *v = *(char **const *) p;
                size_t n = strv_length(v);
                if (f->max && n > f->max)
                        return -E2BIG;
                if (msgpack_pack_array(pk, n) < 0)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        r = pack_str(pk, v[i], MSG_STR_MAX);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        case _FIELD_TYPE_MAX:
                return -EINVAL;
        }
        return r < 0 ? -ENOMEM : 0;
}

int codec_pack_body(msgpack_packer *pk, int type, const void *body) {
        const struct msg_info *info = msg_info_get(type);
        int r;

        if (!info)
                return -EINVAL;
        if (info->n_fields > 0 && !body)
                return -EINVAL;
        if (msgpack_pack_array(pk, info->n_fields) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < info->n_fields; i++) {
                r = pack_field(pk, &info->fields[i], body);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Copy a msgpack string into a fresh NUL-terminated buffer; refuse embedded NULs. */
static int unpack_str(const msgpack_object *o, size_t max, char **ret) {
        char *s;

        if (o->type != MSGPACK_OBJECT_STR)
                return -EBADMSG;
        if (max && o->via.str.size > max)
                return -EBADMSG;
        /* msgpack-c gives an empty string a NULL pointer: never hand that to mem*(). */
        if (o->via.str.size > 0 && memchr(o->via.str.ptr, 0, o->via.str.size))
                return -EBADMSG;
        s = malloc(o->via.str.size + 1);
        if (!s)
                return -ENOMEM;
        if (o->via.str.size > 0)
                memcpy(s, o->via.str.ptr, o->via.str.size);
        s[o->via.str.size] = 0;
        *ret = s;
        return 0;
}

static int unpack_field(const msgpack_object *o, const struct msg_field *f, void *body) {
        void *p = field_ptr(body, f);

        switch (f->type) {
        case FIELD_U64:
                if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                        return -EBADMSG;
                *(uint64_t *) p = o->via.u64;
                return 0;
        case FIELD_I64:
                if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                        *(int64_t *) p = o->via.i64;
                else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
                        *(int64_t *) p = (int64_t) o->via.u64;
                else
                        return -EBADMSG;
                return 0;
        case FIELD_BOOL:
                if (o->type != MSGPACK_OBJECT_BOOLEAN)
                        return -EBADMSG;
                *(bool *) p = o->via.boolean;
                return 0;
        case FIELD_STR:
                return unpack_str(o, f->max, (char **) p);
        case FIELD_BIN: {
                struct msg_bytes *b = p;
                if (o->type != MSGPACK_OBJECT_BIN)
                        return -EBADMSG;
                if (f->max && o->via.bin.size > f->max)
                        return -EBADMSG;
                /* +1 so an empty payload still owns a valid pointer. */
                b->data = malloc(o->via.bin.size + 1);
                if (!b->data)
                        return -ENOMEM;
                if (o->via.bin.size > 0)
                        memcpy(b->data, o->via.bin.ptr, o->via.bin.size);
                b->len = o->via.bin.size;
                return 0;
        }
        case FIELD_STRV: {
                char **v;
                if (o->type != MSGPACK_OBJECT_ARRAY)
                        return -EBADMSG;
                if (f->max && o->via.array.size > f->max)
                        return -EBADMSG;
                v = calloc(o->via.array.size + 1, sizeof(char *));
                if (!v)
                        return -ENOMEM;
                *(char ***) p = v;
                for (uint32_t i = 0; i < o->via.array.size; i++) {
                        int r = unpack_str(&o->via.array.ptr[i], MSG_STR_MAX, &v[i]);
                        if (r < 0)
                                return r; /* caller frees the partial vector */
                }
                return 0;
        }
        case _FIELD_TYPE_MAX:
                break;
        }
        return -EINVAL;
}

void codec_free_body(int type, void *body) {
        const struct msg_info *info = msg_info_get(type);

        if (!info || !body)
                return;
        for (size_t i = 0; i < info->n_fields; i++) {
                const struct msg_field *f = &info->fields[i];
                void *p = field_ptr(body, f);

                switch (f->type) {
                case FIELD_STR:
                        free(*(char **) p);
                        *(char **) p = NULL;
                        break;
                case FIELD_BIN:
                        free(((struct msg_bytes *) p)->data);
                        *(struct msg_bytes *) p = (struct msg_bytes){};
                        break;
                case FIELD_STRV:
                        *(char ***) p = strv_free(*(char ***) p);
                        break;
                case FIELD_U64:
                case FIELD_I64:
                case FIELD_BOOL:
                case _FIELD_TYPE_MAX:
                        break;
                }
        }
}

int codec_unpack_body(const msgpack_object *obj, int type, void *ret_body) {
        const struct msg_info *info = msg_info_get(type);
        int r;

        if (!info)
                return -EINVAL;
        memset(ret_body, 0, info->size);
        if (obj->type != MSGPACK_OBJECT_ARRAY || obj->via.array.size > info->n_fields)
                return -EBADMSG;
        /* Fields the sender left out stay 0 / false, if they may be left out. */
        if (obj->via.array.size < info->n_fields && !info->fields[obj->via.array.size].optional)
                return -EBADMSG;
        for (size_t i = 0; i < obj->via.array.size; i++) {
                r = unpack_field(&obj->via.array.ptr[i], &info->fields[i], ret_body);
                if (r < 0) {
                        codec_free_body(type, ret_body);
                        memset(ret_body, 0, info->size);
                        return r;
                }
        }
        return 0;
}
