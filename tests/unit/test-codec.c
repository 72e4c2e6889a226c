/* SPDX-License-Identifier: MIT */
/*
 * Proves that every body survives encode/decode unchanged and that each kind
 * of malformed frame is refused with the right reason, because handlers trust
 * decoded structs completely.
 */
#include <msgpack.h>
#include <stdint.h>

#include "codec.h"
#include "frame.h"
#include "macro.h"
#include "tap.h"

static void test_roundtrip_spawn(void) {
        char *argv[] = {"qemu-system-x86_64", "-m", "256", "ünïcödé", NULL};
        char *env[] = {"A=1", NULL};
        struct msg_spawn in = {.name = "qemu", .argv = argv, .env = env, .cwd = "/tmp", .stdio = 3};
        _cleanup_free_ uint8_t *buf = NULL;
        struct frame f = {};
        size_t len;
        int r;

        r = frame_encode(MSG_SPAWN, 42, &in, &buf, &len);
        CHECK(r == 0, "encode SPAWN");
        r = frame_decode(buf, len, &f, NULL);
        CHECK(r == 0, "decode SPAWN");
        if (r < 0)
                return;
        struct msg_spawn *out = f.body;
        CHECK(f.type == MSG_SPAWN && f.seq == 42, "type and seq survive");
        CHECK(streq(out->name, "qemu") && streq(out->cwd, "/tmp") && out->stdio == 3, "scalars survive");
        CHECK(strv_length(out->argv) == 4 && streq(out->argv[3], "ünïcödé"), "string vector survives");
        CHECK(strv_length(out->env) == 1 && streq(out->env[0], "A=1"), "env survives");
        CHECK(!out->machine, "not the machine unless said so");
        frame_done(&f);

        in.machine = true;
        free(buf);
        buf = NULL;
        CHECK(frame_encode(MSG_SPAWN, 43, &in, &buf, &len) == 0 && frame_decode(buf, len, &f, NULL) == 0,
              "SPAWN of the machine itself encodes and decodes");
        CHECK(f.body && ((struct msg_spawn *) f.body)->machine, "the machine flag survives");
        frame_done(&f);
}

static void test_roundtrip_bin_and_ints(void) {
        uint8_t payload[300];
        for (size_t i = 0; i < sizeof(payload); i++)
                payload[i] = (uint8_t) i; /* includes NUL and 0xff */
        struct msg_t_echo in = {.target = "b", .payload = {payload, sizeof(payload)}};
        struct msg_proc_exit pe = {.name = "x", .pid = 123, .code = -1, .signal = 9};
        _cleanup_free_ uint8_t *b1 = NULL, *b2 = NULL;
        struct frame f = {};
        size_t l1, l2;

        CHECK(frame_encode(MSG_T_ECHO, 1, &in, &b1, &l1) == 0, "encode binary payload");
        CHECK(frame_decode(b1, l1, &f, NULL) == 0, "decode binary payload");
        struct msg_t_echo *o = f.body;
        CHECK(o && o->payload.len == sizeof(payload) && memcmp(o->payload.data, payload, sizeof(payload)) == 0,
              "binary bytes identical");
        frame_done(&f);

        CHECK(frame_encode(MSG_PROC_EXIT, 2, &pe, &b2, &l2) == 0, "encode negative ints");
        CHECK(frame_decode(b2, l2, &f, NULL) == 0, "decode negative ints");
        struct msg_proc_exit *po = f.body;
        CHECK(po && po->code == -1 && po->signal == 9 && po->pid == 123, "negative int survives");
        frame_done(&f);
}

static void test_empty_body(void) {
        _cleanup_free_ uint8_t *b = NULL;
        struct frame f = {};
        size_t l;

        CHECK(frame_encode(MSG_READY, 0, &(struct msg_empty){}, &b, &l) == 0, "encode empty body");
        CHECK(frame_decode(b, l, &f, NULL) == 0 && f.type == MSG_READY, "decode empty body");
        frame_done(&f);
}

/* A hand-built frame [version, type, seq 7, body]: pack_begin() writes all but
 * the body, pack_end() copies the frame to @out (at most @cap bytes). */
static void pack_begin(msgpack_sbuffer *sb, msgpack_packer *pk, int version, int type) {
        msgpack_sbuffer_init(sb);
        msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
        msgpack_pack_array(pk, 4);
        msgpack_pack_int(pk, version);
        msgpack_pack_int(pk, type);
        msgpack_pack_int(pk, 7);
}

static size_t pack_end(msgpack_sbuffer *sb, uint8_t *out, size_t cap) {
        size_t n = MIN(sb->size, cap);

        memcpy(out, sb->data, n);
        msgpack_sbuffer_destroy(sb);
        return n;
}

/* Build [version, type, seq, body] by hand so invalid shapes can be produced. */
static size_t pack_custom(uint8_t *out, size_t cap, int version, int type, int body_kind) {
        msgpack_sbuffer sb;
        msgpack_packer pk;

        pack_begin(&sb, &pk, version, type);
        switch (body_kind) {
        case 0: /* HELLO with a string where an int belongs */
                msgpack_pack_array(&pk, 4);
                msgpack_pack_str(&pk, 1);
                msgpack_pack_str_body(&pk, "1", 1);
                msgpack_pack_str(&pk, 1);
                msgpack_pack_str_body(&pk, "a", 1);
                msgpack_pack_str(&pk, 1);
                msgpack_pack_str_body(&pk, "b", 1);
                msgpack_pack_int(&pk, 1);
                break;
        case 1: /* wrong field count */
                msgpack_pack_array(&pk, 1);
                msgpack_pack_int(&pk, 1);
                break;
        case 2: /* string with embedded NUL */
                msgpack_pack_array(&pk, 1);
                msgpack_pack_str(&pk, 3);
                msgpack_pack_str_body(&pk, "a\0b", 3);
                break;
        case 3: { /* name longer than NAME_MAX_LEN */
                char big[NAME_MAX_LEN + 10];
                memset(big, 'x', sizeof(big));
                msgpack_pack_array(&pk, 1);
                msgpack_pack_str(&pk, sizeof(big));
                msgpack_pack_str_body(&pk, big, sizeof(big));
                break;
        }
        default:
                msgpack_pack_array(&pk, 0);
        }
        return pack_end(&sb, out, cap);
}

static void expect_reject(const uint8_t *buf, size_t len, enum frame_error want, const char *what) {
        struct frame f = {};
        enum frame_error why = FRAME_OK;
        int r = frame_decode(buf, len, &f, &why);

        CHECK(r < 0 && why == want, "%s refused as '%s' (got '%s')", what, frame_error_to_string(want),
              frame_error_to_string(why));
        if (r == 0)
                frame_done(&f);
}

static void test_rejects(void) {
        uint8_t buf[512];
        size_t n;

        expect_reject((const uint8_t *) "\xc1", 1, FRAME_ERR_MSGPACK, "reserved byte");
        expect_reject((const uint8_t *) "\x94\x01", 2, FRAME_ERR_MSGPACK, "truncated array");
        expect_reject((const uint8_t *) "\x01", 1, FRAME_ERR_ENVELOPE, "bare integer");
        expect_reject((const uint8_t *) "\x93\x01\x01\x01", 4, FRAME_ERR_ENVELOPE, "3-element envelope");

        n = pack_custom(buf, sizeof(buf), PROTO_VERSION + 1, MSG_READY, 9);
        expect_reject(buf, n, FRAME_ERR_VERSION, "other version");
        n = pack_custom(buf, sizeof(buf), PROTO_VERSION, 777, 9);
        expect_reject(buf, n, FRAME_ERR_UNKNOWN_TYPE, "unknown type 777");
        n = pack_custom(buf, sizeof(buf), PROTO_VERSION, 0, 9);
        expect_reject(buf, n, FRAME_ERR_UNKNOWN_TYPE, "type 0");
        n = pack_custom(buf, sizeof(buf), PROTO_VERSION, MSG_HELLO, 0);
        expect_reject(buf, n, FRAME_ERR_BODY, "string in an integer field");
        n = pack_custom(buf, sizeof(buf), PROTO_VERSION, MSG_HELLO, 1);
        expect_reject(buf, n, FRAME_ERR_BODY, "wrong field count");
        n = pack_custom(buf, sizeof(buf), PROTO_VERSION, MSG_FD_STORE, 2);
        expect_reject(buf, n, FRAME_ERR_BODY, "embedded NUL");
        n = pack_custom(buf, sizeof(buf), PROTO_VERSION, MSG_FD_STORE, 3);
        expect_reject(buf, n, FRAME_ERR_BODY, "over-long name");

        /* trailing bytes after a valid value */
        n = pack_custom(buf, sizeof(buf) - 1, PROTO_VERSION, MSG_READY, 9);
        buf[n] = 0x01;
        expect_reject(buf, n + 1, FRAME_ERR_MSGPACK, "trailing byte");
}

/* A SPAWN body of @n fields: name, argv, env, cwd, stdio, machine, and a
 * seventh that no SPAWN has. */
static size_t pack_spawn(uint8_t *out, size_t cap, size_t n) {
        msgpack_sbuffer sb;
        msgpack_packer pk;

        pack_begin(&sb, &pk, PROTO_VERSION, MSG_SPAWN);
        msgpack_pack_array(&pk, n);
        for (size_t i = 0; i < n; i++)
                if (i == 0 || i == 3) {
                        msgpack_pack_str(&pk, 1);
                        msgpack_pack_str_body(&pk, "x", 1);
                } else if (i == 1) {
                        msgpack_pack_array(&pk, 1);
                        msgpack_pack_str(&pk, 4);
                        msgpack_pack_str_body(&pk, "true", 4);
                } else if (i == 2)
                        msgpack_pack_array(&pk, 0);
                else if (i == 4)
                        msgpack_pack_int(&pk, 0);
                else
                        msgpack_pack_true(&pk);
        return pack_end(&sb, out, cap);
}

/* SPAWN grew a trailing optional field (machine): a sender that does not
 * write it still gets its process spawned, as a helper. */
static void test_optional_field(void) {
        uint8_t buf[256];
        struct frame f = {};
        size_t n;

        n = pack_spawn(buf, sizeof(buf), 5);
        CHECK(frame_decode(buf, n, &f, NULL) == 0, "a SPAWN without the machine field decodes");
        CHECK(f.body && streq(((struct msg_spawn *) f.body)->name, "x") && !((struct msg_spawn *) f.body)->machine,
              "its fields are read and the missing one is false");
        frame_done(&f);
        n = pack_spawn(buf, sizeof(buf), 6);
        CHECK(frame_decode(buf, n, &f, NULL) == 0 && f.body && ((struct msg_spawn *) f.body)->machine,
              "one with it says true");
        frame_done(&f);
        n = pack_spawn(buf, sizeof(buf), 4);
        expect_reject(buf, n, FRAME_ERR_BODY, "a SPAWN without a required field (stdio)");
        n = pack_spawn(buf, sizeof(buf), 7);
        expect_reject(buf, n, FRAME_ERR_BODY, "a SPAWN with a field too many");
}

static void test_encode_limits(void) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t l;
        char big[NAME_MAX_LEN + 2];

        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        CHECK(frame_encode(MSG_FD_STORE, 1, &(struct msg_fd_store){.name = big}, &b, &l) == -E2BIG,
              "encoder refuses over-long name");
        CHECK(frame_encode(999, 1, NULL, &b, &l) == -EINVAL, "encoder refuses unknown type");
}

int main(void) {
        test_roundtrip_spawn();
        test_roundtrip_bin_and_ints();
        test_empty_body();
        test_rejects();
        test_optional_field();
        test_encode_limits();
        return tap_done();
}
