/* SPDX-License-Identifier: MIT */
/*
 * test-machine-qemu-bootdisk: proves a boot snapshot's disks are copied
 * whole and sparse, that of two savers of one key exactly one manifest wins
 * and the loser's copies go, that a restore puts the disks into a new state
 * dir, never over a disk already there, and takes them back, and that a
 * fresh manifest without vmstate is not taken for a dead save's. It matters
 * because a restored guest on the wrong disk (or a half-copied one) is a
 * silently broken test.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fs-util.h"
#include "macro.h"
#include "qemu-bootdisk.h"
#include "qemu-snapshot.h"
#include "tap.h"

#define DISK_SIZE (8 << 20)

static char base[] = "/tmp/vigil-bootdisk-XXXXXX";

static char *path_of(const char *a, const char *b) {
        char *p;

        return asprintf(&p, "%s/%s%s%s", base, a, b ? "/" : "", b ?: "") < 0 ? NULL : p;
}

static bool exists(const char *a, const char *b) {
        _cleanup_free_ char *p = path_of(a, b);

        return p && access(p, F_OK) == 0;
}

/* A sparse disk: @token at 0 and at 5 MiB, holes between. */
static void make_disk(const char *path, const char *token) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        CHECK(fd >= 0 && pwrite(fd, token, strlen(token), 0) == (ssize_t) strlen(token) &&
                      pwrite(fd, token, strlen(token), 5 << 20) == (ssize_t) strlen(token) &&
                      ftruncate(fd, DISK_SIZE) == 0,
              "a sparse disk %s", path);
        (void) close(fd);
}

static bool same_disk(const char *path, const char *token) {
        char buf[64] = "";
        struct stat st;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        bool ok = fd >= 0 && fstat(fd, &st) == 0 && st.st_size == DISK_SIZE &&
                  pread(fd, buf, strlen(token), 5 << 20) == (ssize_t) strlen(token) &&
                  !strncmp(buf, token, strlen(token)) && pread(fd, buf, strlen(token), 0) == (ssize_t) strlen(token) &&
                  !strncmp(buf, token, strlen(token)) && (unsigned long long) st.st_blocks * 512 < DISK_SIZE / 2;

        if (fd >= 0)
                (void) close(fd);
        return ok;
}

int main(void) {
        _cleanup_free_ char *cache = NULL, *state1 = NULL, *state2 = NULL, *disk1 = NULL, *m1 = NULL, *m2 = NULL,
                            *why = NULL;
        char *rels[] = {"root.img", NULL}, exists_rel[64] = "";
        unsigned long long bytes = 0;

        CHECK(mkdtemp(base) != NULL, "temporary directory");
        cache = path_of("cache", NULL);
        state1 = path_of("state1", NULL);
        state2 = path_of("state2", NULL);
        CHECK(mkdir(cache, 0755) == 0 && mkdir(state1, 0755) == 0 && mkdir(state2, 0755) == 0, "directories");
        disk1 = path_of("state1", "root.img");
        make_disk(disk1, "token-run-1");

        /* Two savers of one key: both stage, the first link wins. */
        CHECK(qemu_bootdisk_stage(cache, state1, ".100", rels, &m1, &bytes) == 0 && exists("cache", "disk.100.0") &&
                      bytes > 0 && bytes < DISK_SIZE / 2,
              "a save copies the disk beside vmstate, sparse (%llu bytes of data)", bytes);
        CHECK(qemu_bootdisk_stage(cache, state1, ".200", rels, &m2, &bytes) == 0 && exists("cache", "disk.200.0"),
              "an identical machine's save stages its own copy");
        CHECK(qemu_bootdisk_commit(cache, m1) == 0 && exists("cache", QEMU_SNAPSHOT_DISKS),
              "the first to link the manifest wins");
        CHECK(qemu_bootdisk_commit(cache, m2) == -EEXIST, "the second gets EEXIST: it lost");
        qemu_bootdisk_drop(cache, ".200", 1);
        qemu_bootdisk_drop(cache, ".100", 1);
        CHECK(!exists("cache", "disk.200.0") && exists("cache", "disk.100.0") && !exists("cache", "disks.tmp.200"),
              "the loser drops its copy; dropping never takes a file the manifest names");

        /* Restore into a new run's state dir. */
        CHECK(qemu_bootdisk_restore(cache, state2, exists_rel, sizeof exists_rel) == 1 &&
                      exists("state2", QEMU_SNAPSHOT_PLACED),
              "a restore puts the disk back, listed as placed until the guest runs");
        _cleanup_free_ char *disk2 = path_of("state2", "root.img");
        CHECK(same_disk(disk2, "token-run-1") && !exists("state2", "root.img.vigil-restore"),
              "the disk put back holds the saved bytes, sparse, under its own name only");
        CHECK(qemu_bootdisk_restore(cache, state2, exists_rel, sizeof exists_rel) == -EEXIST &&
                      streq(exists_rel, "root.img"),
              "a disk already in the state dir is never overwritten (%s)", exists_rel);
        CHECK(same_disk(disk2, "token-run-1"), "and is left as it was");
        qemu_bootdisk_unplace(state2);
        CHECK(!exists("state2", "root.img") && !exists("state2", QEMU_SNAPSHOT_PLACED),
              "disks placed for a guest that never ran (a failed restore, a dropped QEMU) are taken back");
        CHECK(qemu_bootdisk_restore(cache, state2, exists_rel, sizeof exists_rel) == 1, "placed again");
        qemu_bootdisk_keep(state2);
        qemu_bootdisk_unplace(state2);
        CHECK(exists("state2", "root.img") && !exists("state2", QEMU_SNAPSHOT_PLACED),
              "once the restored guest runs, its disks are its own: nothing takes them");
        CHECK(unlink(disk2) == 0, "(a new run's state dir)");

        /* A manifest without vmstate: a live save's (fresh) stays, a set-aside one goes. */
        qemu_bootdisk_remove_saved(cache, true);
        CHECK(exists("cache", QEMU_SNAPSHOT_DISKS) && exists("cache", "disk.100.0"),
              "a fresh manifest without vmstate may be a save about to rename it: kept");
        qemu_bootdisk_remove_saved(cache, false);
        CHECK(!exists("cache", QEMU_SNAPSHOT_DISKS) && !exists("cache", "disk.100.0"),
              "a snapshot set aside loses its manifest and disks");
        CHECK(qemu_bootdisk_restore(cache, state2, exists_rel, sizeof exists_rel) == 0,
              "no manifest: no disks to restore");

        /* A worker that died after linking: its successor's commit of the same text succeeds. */
        free(m1);
        free(m2);
        m1 = m2 = NULL;
        CHECK(qemu_bootdisk_stage(cache, state1, ".300", rels, &m1, &bytes) == 0 &&
                      qemu_bootdisk_commit(cache, m1) == 0 &&
                      qemu_bootdisk_stage(cache, state1, ".300", rels, &m2, &bytes) == 0 &&
                      qemu_bootdisk_commit(cache, m2) == 0,
              "a re-attached worker re-stages over its predecessor's copies and takes its own manifest as won");

        /* The refusal. */
        CHECK(qemu_bootdisk_refusal(cache, &why) == 0 && qemu_bootdisk_refuse(cache, "it has a disk outside") == 0 &&
                      qemu_bootdisk_refusal(cache, &why) == 1 && streq(why, "it has a disk outside"),
              "no refusal at first; one recorded reads back (%s)", why ?: "");

        /* Which disks a save carries, from query-block. */
        _cleanup_free_ char *reply = NULL, *why2 = NULL;
        char **chosen = NULL;
        CHECK(asprintf(&reply,
                       "{\"return\": [{\"device\": \"drive1\", \"inserted\": {\"ro\": false, \"file\": \"%s\"}}, "
                       "{\"device\": \"cd\", \"inserted\": {\"ro\": true, \"file\": \"/tmp/x.iso\"}}]}",
                       disk1) > 0 &&
                      qemu_bootdisk_choose(reply, state1, &chosen, &why2) == 0 && !why2 && chosen &&
                      streq(chosen[0], "root.img") && !chosen[1],
              "query-block: the writable disk in the state dir is carried");
        strv_free(chosen);
        chosen = NULL;
        free(reply);
        CHECK(asprintf(&reply,
                       "{\"return\": [{\"device\": \"drive1\", \"inserted\": {\"ro\": false, \"file\": \"%s\"}}, "
                       "{\"device\": \"drive2\", \"inserted\": {\"ro\": false, \"file\": \"%s/nope.img\"}}]}",
                       disk1, base) > 0 &&
                      qemu_snapshot_disk_rel_ok("root.img") &&
                      qemu_bootdisk_choose(reply, state1, &chosen, &why2) == 0 && !chosen && why2 &&
                      strstr(why2, "drive2") && strstr(why2, "outside the machine's state dir"),
              "one outside the state dir means no snapshot, naming it (%s)", why2 ?: "");
        free(why2);
        why2 = NULL;
        free(reply);
        CHECK(asprintf(&reply, "{\"return\": [{\"device\": \"d\", \"inserted\": {\"ro\": false, \"file\": \"%s\"}}]}",
                       state1) > 0 &&
                      qemu_bootdisk_choose(reply, base, &chosen, &why2) == 0 && why2 &&
                      strstr(why2, "not a regular file"),
              "a disk that is not a regular file means no snapshot (%s)", why2 ?: "");

        rm_rf(base);
        return tap_done();
}
