/* SPDX-License-Identifier: MIT */
/*
 * qemu-bootdisk.h: the disks a boot snapshot carries (see qemu-bootdisk.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Which disks a save carries, from QMP's query-block answer @reply for a
 * machine whose state dir is @state_dir (qemu_snapshot_disk_rule() on each
 * writable one, which this stat()s): their paths relative to the state dir
 * in @ret_disks (NULL: none), or in @ret_why why the VM can have no
 * snapshot (a disk it cannot carry; @ret_disks NULL then). */
int qemu_bootdisk_choose(const char *reply, const char *state_dir, char ***ret_disks, char **ret_why);
/* Copy the saved disks @rels (relative to @state_dir) of a paused VM into
 * the snapshot dir @dir as disk<@id>.<i> (@id: the saver's own suffix,
 * ".<QEMU pid>"), and write their manifest as @ret_manifest_tmp; the total
 * bytes copied (allocated) in @ret_bytes. Nothing of it is left on error. */
int qemu_bootdisk_stage(const char *dir, const char *state_dir, const char *id, char *const *rels,
                        char **ret_manifest_tmp, unsigned long long *ret_bytes);
/* Link @manifest_tmp as the snapshot's manifest (and remove it): -EEXIST if
 * another saver of the key linked its own first (this save lost); one of
 * the same text is this saver's own (its dead worker linked it). */
int qemu_bootdisk_commit(const char *dir, const char *manifest_tmp);
/* Remove the disk copies and manifest of the saver @id (@n disks) that the
 * snapshot's manifest does not name: a save that lost, failed or died. */
void qemu_bootdisk_drop(const char *dir, const char *id, size_t n);
/* Remove the manifest and the files it names: a snapshot set aside, or
 * (@stale_only) one without its vmstate whose manifest is old enough that
 * no save can still be about to rename it (a save that died). */
void qemu_bootdisk_remove_saved(const char *dir, bool stale_only);

/* Put the disks of the snapshot in @dir back into @state_dir before QEMU
 * starts (its start script then finds them), listed first in
 * QEMU_SNAPSHOT_PLACED there: 0 if the snapshot carries none, 1 if placed,
 * -EEXIST (nothing placed) if one is there already (kept state), its
 * relative path in @ret_exists; other errors place nothing. Logs the copy's
 * time and size. */
int qemu_bootdisk_restore(const char *dir, const char *state_dir, char *ret_exists, size_t size);
/* Remove the disks QEMU_SNAPSHOT_PLACED in @state_dir lists, and it: their
 * restore failed or its QEMU never ran the guest (the cold boot that follows
 * gets what it would have had). */
void qemu_bootdisk_unplace(const char *state_dir);
/* The restored guest runs: its disks are its own from now on. */
void qemu_bootdisk_keep(const char *state_dir);

/* Why the key of @dir gets no snapshot, recorded by a save that found a disk
 * it cannot carry: 1 with it in @ret, 0 if none. */
int qemu_bootdisk_refusal(const char *dir, char **ret);
int qemu_bootdisk_refuse(const char *dir, const char *why);
