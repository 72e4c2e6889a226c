/* SPDX-License-Identifier: MIT */
/*
 * fuzz-frame.c: the frame/envelope/body decoder under a fuzzer. Any input
 * must either be refused with a reason or decode into a body that re-encodes
 * and decodes to the same type and seq. Built for libFuzzer by
 * tools/run-fuzz; built by meson as a replay program that runs the stored
 * corpus (tests/fuzz/corpus) as a regression test, and that can write seeds.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "frame.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct frame f = {}, g = {};
        enum frame_error why;
        uint8_t *buf = NULL;
        size_t len;

        if (frame_decode(data, size, &f, &why) < 0) {
                if (why <= FRAME_OK || why >= _FRAME_ERR_MAX)
                        __builtin_trap(); /* a refusal must name its reason */
                return 0;
        }
        if (frame_encode(f.type, f.seq, f.body, &buf, &len) < 0)
                __builtin_trap(); /* what we accept we must be able to send */
        if (frame_decode(buf, len, &g, NULL) < 0 || g.type != f.type || g.seq != f.seq)
                __builtin_trap();
        frame_done(&g);
        frame_done(&f);
        free(buf);
        return 0;
}

#ifndef VIGIL_LIBFUZZER
#include "fuzz-replay.h"

static int write_seed(const char *dir, const char *name, int type, const void *body) {
        _cleanup_free_ uint8_t *buf = NULL;
        char path[4096];
        size_t len;
        FILE *fp;
        int r = frame_encode(type, 7, body, &buf, &len);

        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fp = fopen(path, "wbe");
        if (!fp)
                return -errno;
        fwrite(buf, 1, len, fp);
        fclose(fp);
        return 0;
}

int main(int argc, char **argv) {
        if (argc == 3 && streq(argv[1], "--write-seeds")) {
                char *argv_[] = {"qemu", "-m", "256", NULL};
                (void) mkdir(argv[2], 0755);
                write_seed(argv[2], "hello", MSG_HELLO,
                           &(struct msg_hello){.proto = 1, .kind = "machine", .name = "a", .pid = 1});
                write_seed(argv[2], "spawn", MSG_SPAWN,
                           &(struct msg_spawn){.name = "q", .argv = argv_, .env = argv_, .cwd = "/", .stdio = 7});
                write_seed(argv[2], "execute", MSG_M_EXECUTE,
                           &(struct msg_m_execute){.machine = "m", .command = "true", .timeout_s = -1});
                write_seed(argv[2], "chunk", MSG_CHUNK, &(struct msg_chunk){.data = {(uint8_t *) "abc", 3}});
                write_seed(argv[2], "ready", MSG_READY, &(struct msg_empty){});
                return 0;
        }
        /* Its seeds are encoded frames, written above; the replay is the shared one. */
        return fuzz_replay_main(argc, argv, NULL, 0);
}
#endif
