/* SPDX-License-Identifier: MIT */
/*
 * fuzz-replay.h: the main() of a fuzz target built without libFuzzer. It
 * replays every file of the given corpus directories (or single files)
 * through LLVMFuzzerTestOneInput() as a regression test, and with
 * `--write-seeds DIR` writes the target's built-in seeds there.
 */
#pragma once

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "macro.h"

struct fuzz_seed {
        const char *name;
        const char *data;
        size_t size;
};

#define FUZZ_SEED(name, literal)                                                                                      \
        { (name), (literal), sizeof(literal) - 1 }
#define FUZZ_REPLAY_MAX (1u << 20)

static int fuzz_replay_file(const char *path) {
        _cleanup_fclose_ FILE *fp = fopen(path, "rbe");
        static uint8_t buf[FUZZ_REPLAY_MAX];
        size_t n;

        if (!fp)
                return -errno;
        n = fread(buf, 1, sizeof(buf), fp);
        LLVMFuzzerTestOneInput(buf, n);
        return 0;
}

static int fuzz_write_seeds(const char *dir, const struct fuzz_seed *seeds, size_t n_seeds) {
        (void) mkdir(dir, 0755);
        for (size_t i = 0; i < n_seeds; i++) {
                char path[4096];
                _cleanup_fclose_ FILE *fp = NULL;

                snprintf(path, sizeof(path), "%s/seed-%s", dir, seeds[i].name);
                fp = fopen(path, "wbe");
                if (!fp || fwrite(seeds[i].data, 1, seeds[i].size, fp) != seeds[i].size)
                        return 1;
        }
        return 0;
}

static int fuzz_replay_main(int argc, char **argv, const struct fuzz_seed *seeds, size_t n_seeds) {
        int files = 0;

        if (argc == 3 && streq(argv[1], "--write-seeds"))
                return fuzz_write_seeds(argv[2], seeds, n_seeds);
        for (size_t i = 0; i < n_seeds; i++) /* the seeds are always part of the replay */
                LLVMFuzzerTestOneInput((const uint8_t *) seeds[i].data, seeds[i].size);
        for (int i = 1; i < argc; i++) {
                _cleanup_closedir_ DIR *d = opendir(argv[i]);
                struct dirent *de;

                if (!d) {
                        if (fuzz_replay_file(argv[i]) == 0)
                                files++;
                        continue;
                }
                while ((de = readdir(d))) {
                        char path[4096];

                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
                        if (fuzz_replay_file(path) == 0)
                                files++;
                }
        }
        printf("replayed %zu seeds and %d corpus inputs without a crash\n", n_seeds, files);
        return files > 0 ? 0 : 1;
}
