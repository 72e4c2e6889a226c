/* SPDX-License-Identifier: MIT */
/*
 * codec.h: typed message bodies <-> msgpack, driven by the field lists of
 * msg-table.c. Pure code: no I/O, no logging. Decoding checks every type,
 * count and length before anything is stored, so a handler only ever sees a
 * complete, bounded struct.
 */
#pragma once

#include <msgpack.h>

#include "msg.h"

/* Append the body of @type (a struct of the matching msg_* kind) to @pk. */
int codec_pack_body(msgpack_packer *pk, int type, const void *body);

/* Decode @obj (the body array) into @ret_body, which must be info->size bytes.
 * On failure nothing needs freeing and @ret_body is zeroed. -EBADMSG on any
 * type/count/length problem; only trailing optional fields may be missing. */
int codec_unpack_body(const msgpack_object *obj, int type, void *ret_body);

/* Free what codec_unpack_body() allocated inside @body (not @body itself). */
void codec_free_body(int type, void *body);
