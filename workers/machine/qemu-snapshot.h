/* SPDX-License-Identifier: MIT */
/*
 * qemu-snapshot.h: the boot cache's pure parts (see qemu-snapshot.c): the
 * key of a VM, the cache paths, and the guest commands around a snapshot.
 */
#pragma once

#include <stddef.h>

#define QEMU_SNAPSHOT_KEY_LEN 16
#define QEMU_SNAPSHOT_STATE   "vmstate" /* in <cache>/<key>/ */
#define QEMU_SNAPSHOT_META    "key.txt" /* what the key was computed from, for humans */
/* In the machine's state dir while a save is under way: the temporary file
 * and the snapshot it becomes, one a line, so a worker that re-attaches
 * after its predecessor died mid-save can finish or undo it. */
#define QEMU_SNAPSHOT_SAVING "boot-cache-saving"

/* Before the save: unmount every 9p share (QEMU refuses to migrate while one
 * is mounted), remembering them in the guest's RAM for the remount. Exits
 * non-zero, naming the share, if one is busy. */
#define QEMU_SNAPSHOT_PREPARE_COMMAND                                                                                 \
        "grep ' 9p ' /proc/mounts > /run/vigil-9p; "                                                                  \
        "while read -r src dst fstype opts rest; do umount \"$dst\" || { echo \"9p share $dst is busy\" "             \
        ">&2; exit 1; }; done < /run/vigil-9p"
/* After the save (the original VM) or the restore: mount them again. A share
 * still mounted is left alone (a save interrupted before or during the
 * unmounts, finished by a re-attached worker). */
#define QEMU_SNAPSHOT_REMOUNT_COMMAND                                                                                 \
        "[ -f /run/vigil-9p ] || exit 0; mapfile -t m </proc/mounts; while read -r src dst fstype opts rest; do "     \
        "[[ \" ${m[*]} \" == *\" $dst 9p \"* ]] || mount -t 9p -o \"$opts\" \"$src\" \"$dst\" || exit 1; "            \
        "done < /run/vigil-9p"

/* The key of a VM: a hash of @argv and @env entries that shape it (QEMU_*),
 * with @state_dir, @shared_dir and the run directory (the parent of
 * @state_dir) replaced by placeholders, plus the size, mtime and inode of
 * every file an argument names (kernel, initrd, disks, start script, QEMU
 * binary). @ret_key gets QEMU_SNAPSHOT_KEY_LEN hex digits; @ret_text (may be
 * NULL) what was hashed. */
int qemu_snapshot_key(char *const *argv, char *const *env, const char *state_dir, const char *shared_dir,
                      char ret_key[QEMU_SNAPSHOT_KEY_LEN + 1], char **ret_text);

/* After a restore: set the guest's clock to @usec since the epoch, then
 * mount the 9p shares again (one round trip). */
int qemu_snapshot_clock_command(unsigned long long usec, char **ret);

/* QMP's migration status @status (query-migrate's "status"; "" when there
 * was no migration) as one of these. */
enum qemu_snapshot_migration {
        QEMU_SNAPSHOT_MIGRATION_RUNNING,   /* setup, active, device, ...: ask again */
        QEMU_SNAPSHOT_MIGRATION_COMPLETED, /* the file holds the whole VM */
        QEMU_SNAPSHOT_MIGRATION_NONE,      /* failed, cancelled, or none: the file is not a snapshot */
};
enum qemu_snapshot_migration qemu_snapshot_migration_of(const char *status);

/* The QEMU_SNAPSHOT_SAVING file's text for a save to @tmp becoming @path,
 * and back; -EBADMSG for a text that is not two absolute paths. */
int qemu_snapshot_saving_format(const char *tmp, const char *path, char **ret);
int qemu_snapshot_saving_parse(const char *text, char **ret_tmp, char **ret_path);
