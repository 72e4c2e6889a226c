/* SPDX-License-Identifier: MIT */
/*
 * qemu-snapshot.h: the boot cache's pure parts (see qemu-snapshot.c): the
 * key of a VM, the cache paths, the guest commands around a snapshot, and
 * the arguments for RAM outside the stream.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define QEMU_SNAPSHOT_KEY_LEN 16
#define QEMU_SNAPSHOT_STATE   "vmstate" /* in <cache>/<key>/ */
#define QEMU_SNAPSHOT_META    "key.txt" /* what the key was computed from, for humans */
/* In the machine's state dir while a save is under way: the temporary file
 * and the snapshot it becomes, one a line, so a worker that re-attaches
 * after its predecessor died mid-save can finish or undo it. */
#define QEMU_SNAPSHOT_SAVING "boot-cache-saving"
/* In the state dir while a restored guest's shares and clock are not back:
 * a worker that re-attaches and finds it resumes the guest again. */
#define QEMU_SNAPSHOT_RESUMING "boot-cache-resuming"

/* Direct-boot machines keep their RAM out of the migration stream
 * (qemu_snapshot_ram_args()): the boot that saves has it in a shared memfd
 * of QEMU's, which the snapshot gets a copy of; restores map that copy
 * privately (copy-on-write) and load only the device state. */
#define QEMU_SNAPSHOT_RAM       "ram"                         /* in <cache>/<key>/, beside vmstate */
#define QEMU_SNAPSHOT_RAM_ID    "vigil-ram"                   /* QEMU's id of that memory backend */
#define QEMU_SNAPSHOT_RAM_MEMFD "/memfd:memory-backend-memfd" /* how /proc/PID/fd shows that memfd */

/* Before the save: unmount every 9p share (QEMU refuses to migrate while one
 * is mounted), remembering them in the guest's RAM for the remount. Exits
 * non-zero, naming the share, if one is busy. */
#define QEMU_SNAPSHOT_UNMOUNT_COMMAND                                                                                 \
        "grep ' 9p ' /proc/mounts > /run/vigil-9p; "                                                                  \
        "while read -r src dst fstype opts rest; do umount \"$dst\" || { echo \"9p share $dst is busy\" "             \
        ">&2; exit 1; }; done < /run/vigil-9p"
/* True if some share of /run/vigil-9p is not mounted, which are then listed
 * (fstab lines) in /run/vigil-9p.todo: shell builtins only, so that one exec
 * of `mount -a -T` mounts them all. A share still mounted is left alone (a
 * save interrupted before or during the unmounts, finished by a re-attached
 * worker). */
#define QEMU_SNAPSHOT_SHARES_MISSING                                                                                  \
        "{ [ -f /run/vigil-9p ] && mapfile -t m </proc/mounts && : >/run/vigil-9p.todo && "                           \
        "while read -r src dst rest; do [[ \" ${m[*]} \" == *\" $dst 9p \"* ]] || "                                   \
        "printf '%s %s %s\\n' \"$src\" \"$dst\" \"$rest\" >>/run/vigil-9p.todo; done </run/vigil-9p && "              \
        "[ -s /run/vigil-9p.todo ]; }"
/* After the save (the original VM): mount them again. */
#define QEMU_SNAPSHOT_REMOUNT_COMMAND "if " QEMU_SNAPSHOT_SHARES_MISSING "; then mount -a -T /run/vigil-9p.todo; fi"

/* The key of a VM: a hash of @argv and @env entries that shape it (QEMU_*),
 * with @state_dir, @shared_dir and the run directory (the parent of
 * @state_dir) replaced by placeholders, plus the size, mtime and inode of
 * every file an argument names (kernel, initrd, disks, start script, QEMU
 * binary) outside @state_dir. @ret_key gets QEMU_SNAPSHOT_KEY_LEN hex digits; @ret_text (may be
 * NULL) what was hashed. */
int qemu_snapshot_key(char *const *argv, char *const *env, const char *state_dir, const char *shared_dir,
                      char ret_key[QEMU_SNAPSHOT_KEY_LEN + 1], char **ret_text);

/* The command before a save: QEMU_SNAPSHOT_UNMOUNT_COMMAND, then, with
 * @agent_base64 (vigil-resume's binary; NULL or "": none), put the agent into
 * the guest's /run and leave it waiting on its FIFO, so that it is in the
 * snapshot (best effort: a guest of another architecture, without base64 or
 * with /run not executable resumes by the shell as before). */
int qemu_snapshot_prepare_command(const char *agent_base64, char **ret);

/* After a restore, after the save in the VM saved, or after a save finished
 * by a re-attached worker, the guest's 9p shares are mounted again and its
 * clock set to @usec since the epoch plus the time the command took until
 * then. First by the agent, if one waits (its pid file names a live
 * process): the job hands it @usec and the uptime (and @cont_usec, the host's
 * time when QEMU let the VM run, if not 0 and the agent reads it: its clock
 * is then off by no more than the few ms the guest ran between the agent's
 * start and the save's pause, where @usec lags by the time the restored
 * guest took to start the job), and exits 0 printing
 * RESUME_AGENT_DONE, QEMU_SNAPSHOT_AGENT_ABSENT if none waits, or
 * QEMU_SNAPSHOT_AGENT_FAILED with the agent's reason on stderr. The job holds
 * nothing else: bash parses a whole job before it runs any of it, and right
 * after a restore every construct it has not parsed since costs TCG a fresh
 * translation (the shell's way inline made each restore ~80 ms slower). */
#define QEMU_SNAPSHOT_AGENT_ABSENT 3
#define QEMU_SNAPSHOT_AGENT_FAILED 4
int qemu_snapshot_agent_command(unsigned long long usec, unsigned long long cont_usec, char **ret);
/* The shell's way, the next job when the agent's did not end in "done":
 * @restored (after a restore with no agent: every share is unmounted) mounts
 * them all with one exec of mount(8), else only those /proc/mounts lacks;
 * then date(1). */
int qemu_snapshot_clock_command(unsigned long long usec, bool restored, char **ret);

/* Whether the VM has a disk QEMU may write that a snapshot can never carry,
 * known before it starts: a disk option (-drive, -hda..-hdd, -blockdev,
 * -pflash) in @qemu_opts or in @argv (the direct boot's whole command line,
 * its "disk" among it, or a start script's extra arguments) naming an
 * absolute file outside @state_dir or a protocol (json:, nbd:, ...), unless
 * read-only, snapshot=on or NixOS's store image. A start script's own QEMU
 * line is not read: its disks (NixOS's $NIX_DISK_IMAGE, made in the state
 * dir) are decided by the save, from QEMU's query-block. 1 with the disk's
 * argument in @ret (cut to @size), 0 if none. */
int qemu_snapshot_writable_disk(const char *qemu_opts, char *const *argv, const char *state_dir, char *ret,
                                size_t size);

/* What the save does with one disk QEMU writes (qemu_snapshot_disk_rule()). */
enum qemu_snapshot_disk_verdict {
        QEMU_SNAPSHOT_DISK_CARRIED,     /* a regular file in the state dir: copied beside the snapshot */
        QEMU_SNAPSHOT_DISK_SKIPPED,     /* NixOS's store image: made afresh at every start, mounted read-only */
        QEMU_SNAPSHOT_DISK_OUTSIDE,     /* a file outside the state dir: no snapshot */
        QEMU_SNAPSHOT_DISK_PROTOCOL,    /* json:, nbd:, ... or a relative name: no snapshot */
        QEMU_SNAPSHOT_DISK_NOT_REGULAR, /* a block device, a FIFO, ...: no snapshot */
        _QEMU_SNAPSHOT_DISK_VERDICT_MAX,
};
/* Why a verdict other than CARRIED or SKIPPED means no snapshot. */
const char *qemu_snapshot_disk_why(enum qemu_snapshot_disk_verdict v);
/* The rule for the file @file (QEMU's "inserted.file"), @regular if it is a
 * regular file, in a machine whose state dir is @state_dir (or, if not NULL,
 * @state_real, its canonical path: NixOS resolves the disk's path). For
 * CARRIED, @ret_rel points into @file: its path relative to the state dir,
 * which the next run's different state dir keeps. */
enum qemu_snapshot_disk_verdict qemu_snapshot_disk_rule(const char *file, bool regular, const char *state_dir,
                                                        const char *state_real, const char **ret_rel);
/* A path relative to the state dir that a manifest or marker may name: not
 * empty, not absolute, no "", "." or ".." component, no newline. */
bool qemu_snapshot_disk_rel_ok(const char *rel);

/* One disk QEMU writes, from query-block. */
struct qemu_snapshot_block {
        char *device; /* QEMU's device (or node) name */
        char *file;   /* its "inserted.file" */
};
/* The devices of QMP's query-block answer @reply that have a medium inserted
 * that is not read-only ("ro": false). -EBADMSG: not a query-block answer. */
int qemu_snapshot_writable_blocks(const char *reply, struct qemu_snapshot_block **ret, size_t *ret_n);
void qemu_snapshot_blocks_free(struct qemu_snapshot_block *b, size_t n);

/* The manifest of the disks a snapshot carries (<dir>/QEMU_SNAPSHOT_DISKS):
 * for each, its path relative to the state dir and the file beside vmstate
 * that holds it. */
#define QEMU_SNAPSHOT_DISKS       "disks"       /* the manifest; its link() is the saver's winning token */
#define QEMU_SNAPSHOT_NO_SNAPSHOT "no-snapshot" /* why this key never gets a snapshot (a disk it cannot carry) */
struct qemu_snapshot_disk {
        char *rel;   /* in the state dir */
        char *saved; /* a file name in <dir> */
};
int qemu_snapshot_manifest_format(const struct qemu_snapshot_disk *d, size_t n, char **ret);
/* -EBADMSG for a text that is not a manifest (a bad name or path among it). */
int qemu_snapshot_manifest_parse(const char *text, struct qemu_snapshot_disk **ret, size_t *ret_n);
void qemu_snapshot_disks_free(struct qemu_snapshot_disk *d, size_t n);

/* Whether the RAM of a direct-boot VM whose extra arguments are @argv may
 * live in a file: not if they choose its memory themselves (-m, -mem-path,
 * -numa, a memory backend of their own). */
bool qemu_snapshot_ram_mappable(char *const *argv);
/* A NixOS start script's guest memory, so its RAM can live in a file too:
 * the MiB of the one `-m <digits>` in @script (qemu-vm.nix writes
 * `-m <memorySize>`), if neither the script nor @qemu_opts (the QEMU_OPTS it
 * appends) nor @extra_args choose the memory otherwise. -ENOENT: keep the
 * RAM in the stream (no -m, two, a size with a unit, a backend of its own). */
int qemu_snapshot_script_memory(const char *script, const char *qemu_opts, char *const *extra_args,
                                unsigned long long *ret_mb);
/* The arguments that give the guest @memory_mb MiB of RAM: in a shared memfd
 * (@path NULL: a boot that saves; the snapshot copies it) or in the file
 * @path mapped private (a restore: the guest's writes never reach it). */
int qemu_snapshot_ram_args(const char *path, unsigned long long memory_mb, char ***ret);

/* QMP's migration status @status (query-migrate's "status"; "" when there
 * was no migration) as one of these. */
enum qemu_snapshot_migration {
        QEMU_SNAPSHOT_MIGRATION_RUNNING,   /* setup, active, device, ...: ask again */
        QEMU_SNAPSHOT_MIGRATION_COMPLETED, /* the file holds the whole VM */
        QEMU_SNAPSHOT_MIGRATION_NONE,      /* failed, cancelled, or none: the file is not a snapshot */
};
enum qemu_snapshot_migration qemu_snapshot_migration_of(const char *status);

/* In the state dir from the moment a restore puts a snapshot's disks there
 * until its guest runs: they are the snapshot's copies, not a guest's, so a
 * plan that finds them (the restore's QEMU was dropped before it ran, or its
 * worker died) removes them first. One "disk <relative path>" line each. */
#define QEMU_SNAPSHOT_PLACED "boot-cache-placed"
int qemu_snapshot_placed_format(char *const *disks, char **ret);
/* -EBADMSG for a line that is not a disk line naming a path in the state dir. */
int qemu_snapshot_placed_parse(const char *text, char ***ret_disks);

/* The QEMU_SNAPSHOT_SAVING file's text for a save to @tmp becoming @path
 * that carries the disks @disks (paths relative to the state dir; NULL:
 * none, or not known yet), and back (@ret_disks: NULL if none);
 * -EBADMSG for a text that is not two absolute paths and disk lines. */
int qemu_snapshot_saving_format(const char *tmp, const char *path, char *const *disks, char **ret);
int qemu_snapshot_saving_parse(const char *text, char **ret_tmp, char **ret_path, char ***ret_disks);
