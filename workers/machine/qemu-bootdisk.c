/* SPDX-License-Identifier: MIT */
/*
 * qemu-bootdisk.c owns the disks a boot snapshot carries (docs/machine.md,
 * "Boot snapshots"): which disks a save carries (query-block's answer under
 * qemu-snapshot.c's pure rule, with stat() on each file), copying them from
 * the paused VM's state dir beside vmstate with the manifest that names
 * them (whose link() decides which of two savers of one key wins), putting
 * them back into a new run's state dir before QEMU starts (never over a disk
 * already there), taking them away again when the restore fails, and the
 * note that a key never gets a snapshot. Copies are reflinks where the file
 * system can, else sparse. qemu-bootcache.c decides when.
 */
#include <fcntl.h>
#include <libgen.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "fd-util.h"
#include "fs-util.h"
#include "log.h"
#include "macro.h"
#include "qemu-bootdisk.h"
#include "qemu-snapshot.h"

#define COPY_CHUNK (8ULL << 20)
/* A manifest without its vmstate this old is a dead save's: a live one
 * renames vmstate right after the link (its data already synced). */
#define STALE_USEC (10ULL * 60 * USEC_PER_SEC)

struct copy_stats {
        unsigned long long size, allocated;
        bool reflinked;
};

static int pread_pwrite(int in, int out, off_t off, size_t len) {
        _cleanup_free_ char *buf = malloc(MIN(len, (size_t) COPY_CHUNK));

        if (!buf)
                return -ENOMEM;
        while (len > 0) {
                ssize_t n = pread(in, buf, MIN(len, (size_t) COPY_CHUNK), off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? negative_errno() : -EIO;
                int r = pwrite_all(out, buf, (size_t) n, off);
                if (r < 0)
                        return r;
                off += n;
                len -= (size_t) n;
        }
        return 0;
}

/* [@off, @off + @len) of @in to the same place in @out: copy_file_range,
 * or read and write where the kernel cannot. */
static int copy_range(int in, int out, off_t off, size_t len) {
        while (len > 0) {
                loff_t a = off, b = off;
                ssize_t n = copy_file_range(in, &a, out, &b, MIN(len, (size_t) 1 << 30), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP))
                        return pread_pwrite(in, out, off, len);
                if (n <= 0)
                        return n < 0 ? negative_errno() : -EIO;
                off += n;
                len -= (size_t) n;
        }
        return 0;
}

/* The data of @in into the empty @out, holes left holes. */
static int copy_sparse(int in, int out, off_t size) {
        for (off_t off = 0; off < size;) {
                off_t data = lseek(in, off, SEEK_DATA), hole;
                if (data < 0 && errno == ENXIO)
                        break;
                if (data < 0)
                        return negative_errno();
                hole = lseek(in, data, SEEK_HOLE);
                if (hole < 0)
                        return negative_errno();
                int r = copy_range(in, out, data, (size_t) (hole - data));
                if (r < 0)
                        return r;
                off = hole;
        }
        return ftruncate(out, size) < 0 ? negative_errno() : 0;
}

/* @from as the new file @to (which must not exist); with @sync on disk when
 * this returns: a snapshot names only files whose data is there. (A disk
 * put back into a state dir needs no sync: a host crash ends that run.) */
static int disk_copy(const char *from, const char *to, bool sync, struct copy_stats *ret) {
        _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), out = -EBADF;
        struct stat st;
        int r = 0;

        if (in < 0 || fstat(in, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (out < 0)
                return negative_errno();
        ret->reflinked = ioctl(out, FICLONE, in) == 0;
        if (!ret->reflinked)
                r = copy_sparse(in, out, st.st_size);
        if (r >= 0 && ((sync && fdatasync(out) < 0) || fstat(out, &st) < 0))
                r = negative_errno();
        if (r < 0) {
                (void) unlink(to);
                return r;
        }
        ret->size = (unsigned long long) st.st_size;
        ret->allocated = (unsigned long long) st.st_blocks * 512;
        return 0;
}

static char *saved_name(const char *id, size_t i) {
        char *s;

        return asprintf(&s, "disk%s.%zu", id, i) < 0 ? NULL : s;
}

static int write_new(const char *path, const char *text) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        size_t len = strlen(text);

        if (fd < 0)
                return negative_errno();
        if (write(fd, text, len) != (ssize_t) len || fdatasync(fd) < 0) {
                int r = errno ? negative_errno() : -EIO;
                (void) unlink(path);
                return r;
        }
        return 0;
}

int qemu_bootdisk_choose(const char *reply, const char *state_dir, char ***ret_disks, char **ret_why) {
        _cleanup_free_ char *real = realpath(state_dir, NULL), *why = NULL;
        _cleanup_strv_free_ char **disks = NULL;
        struct qemu_snapshot_block *b = NULL;
        size_t n = 0, k = 0;
        int r;

        r = qemu_snapshot_writable_blocks(reply, &b, &n);
        if (r < 0)
                return r;
        disks = calloc(n + 1, sizeof *disks);
        for (size_t i = 0; disks && i < n && !why; i++) {
                struct stat st;
                const char *rel = NULL;
                bool regular = stat(b[i].file, &st) == 0 && S_ISREG(st.st_mode);
                enum qemu_snapshot_disk_verdict v = qemu_snapshot_disk_rule(b[i].file, regular, state_dir, real, &rel);

                if (v == QEMU_SNAPSHOT_DISK_CARRIED && !(disks[k++] = strdup(rel)))
                        disks = strv_free(disks);
                else if (v != QEMU_SNAPSHOT_DISK_CARRIED && v != QEMU_SNAPSHOT_DISK_SKIPPED &&
                         asprintf(&why, "it has a disk QEMU writes that a snapshot cannot carry: %s (%s): %s",
                                  b[i].device, b[i].file, qemu_snapshot_disk_why(v)) < 0) {
                        why = NULL;
                        disks = strv_free(disks);
                }
        }
        qemu_snapshot_blocks_free(b, n);
        if (!disks)
                return -ENOMEM;
        if (why) {
                *ret_disks = NULL;
                *ret_why = TAKE_PTR(why);
                return 0;
        }
        *ret_disks = k > 0 ? TAKE_PTR(disks) : NULL;
        *ret_why = NULL;
        return 0;
}

int qemu_bootdisk_stage(const char *dir, const char *state_dir, const char *id, char *const *rels,
                        char **ret_manifest_tmp, unsigned long long *ret_bytes) {
        size_t n = strv_length(rels);
        _cleanup_free_ struct qemu_snapshot_disk *d = calloc(n + 1, sizeof *d);
        _cleanup_free_ char *text = NULL, *manifest = NULL;
        unsigned long long bytes = 0;
        size_t done = 0;
        int r = 0;

        if (!d || asprintf(&manifest, "%s/" QEMU_SNAPSHOT_DISKS ".tmp%s", dir, id) < 0)
                return -ENOMEM;
        for (; done < n; done++) {
                _cleanup_free_ char *from = NULL, *to = NULL;
                struct copy_stats st;
                d[done].rel = rels[done];
                d[done].saved = saved_name(id, done);
                if (!d[done].saved || asprintf(&from, "%s/%s", state_dir, rels[done]) < 0 ||
                    asprintf(&to, "%s/%s", dir, d[done].saved) < 0) {
                        r = -ENOMEM;
                        break;
                }
                (void) unlink(to); /* this saver's own: a worker before it died copying */
                r = disk_copy(from, to, true, &st);
                if (r < 0) {
                        log_warning("Boot cache: could not copy the disk %s into the snapshot: %s", from,
                                    strerror(-r));
                        break;
                }
                bytes += st.allocated;
        }
        if (r >= 0)
                r = qemu_snapshot_manifest_format(d, n, &text);
        if (r >= 0) {
                (void) unlink(manifest);
                r = write_new(manifest, text);
        }
        for (size_t i = 0; i < n; i++)
                free(d[i].saved);
        if (r < 0) {
                qemu_bootdisk_drop(dir, id, n);
                return r;
        }
        *ret_manifest_tmp = TAKE_PTR(manifest);
        *ret_bytes = bytes;
        return 0;
}

int qemu_bootdisk_commit(const char *dir, const char *manifest_tmp) {
        _cleanup_free_ char *manifest = NULL, *ours = NULL, *theirs = NULL;
        int r = 0;

        if (asprintf(&manifest, "%s/" QEMU_SNAPSHOT_DISKS, dir) < 0)
                r = -ENOMEM;
        else if (link(manifest_tmp, manifest) < 0)
                r = negative_errno();
        /* The same text names this saver's own files: its previous worker
         * linked it, then died (a re-attached worker finishes the save). */
        if (r == -EEXIST && read_file_max(manifest_tmp, 1 << 20, &ours) >= 0 &&
            read_file_max(manifest, 1 << 20, &theirs) >= 0 && streq(ours, theirs))
                r = 0;
        (void) unlink(manifest_tmp);
        return r;
}

/* The manifest of the snapshot in @dir: -ENOENT if none. */
static int manifest_read(const char *dir, struct qemu_snapshot_disk **ret, size_t *ret_n) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        int r;

        if (asprintf(&path, "%s/" QEMU_SNAPSHOT_DISKS, dir) < 0)
                return -ENOMEM;
        r = read_file_max(path, 1 << 20, &text);
        if (r < 0)
                return r;
        return qemu_snapshot_manifest_parse(text, ret, ret_n);
}

void qemu_bootdisk_drop(const char *dir, const char *id, size_t n) {
        struct qemu_snapshot_disk *d = NULL;
        size_t nd = 0;
        char path[4400];

        (void) manifest_read(dir, &d, &nd);
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *name = saved_name(id, i);
                bool kept = false;
                for (size_t k = 0; name && k < nd; k++)
                        kept = kept || streq(d[k].saved, name);
                if (name && !kept) {
                        (void) snprintf(path, sizeof path, "%s/%s", dir, name);
                        (void) unlink(path);
                }
        }
        (void) snprintf(path, sizeof path, "%s/" QEMU_SNAPSHOT_DISKS ".tmp%s", dir, id);
        (void) unlink(path);
        qemu_snapshot_disks_free(d, nd);
}

void qemu_bootdisk_remove_saved(const char *dir, bool stale_only) {
        struct qemu_snapshot_disk *d = NULL;
        size_t n = 0;
        char path[4400];
        struct stat st;

        (void) snprintf(path, sizeof path, "%s/" QEMU_SNAPSHOT_DISKS, dir);
        if (stat(path, &st) < 0 ||
            (stale_only && (unsigned long long) st.st_mtim.tv_sec * USEC_PER_SEC + STALE_USEC > now_realtime_usec()))
                return;
        if (stale_only)
                log_info("Boot cache: removing %s and its disks, left by a save that did not finish", path);
        if (manifest_read(dir, &d, &n) == -ENOENT)
                return;
        for (size_t i = 0; i < n; i++) {
                (void) snprintf(path, sizeof path, "%s/%s", dir, d[i].saved);
                (void) unlink(path);
        }
        qemu_snapshot_disks_free(d, n);
        (void) snprintf(path, sizeof path, "%s/" QEMU_SNAPSHOT_DISKS, dir);
        (void) unlink(path);
}

static char *placed_path(const char *state_dir) {
        char *p;

        return asprintf(&p, "%s/" QEMU_SNAPSHOT_PLACED, state_dir) < 0 ? NULL : p;
}

void qemu_bootdisk_unplace(const char *state_dir) {
        _cleanup_free_ char *marker = placed_path(state_dir), *text = NULL;
        _cleanup_strv_free_ char **disks = NULL;
        char path[4400];

        if (!marker || read_file_max(marker, 1 << 20, &text) < 0)
                return;
        /* Only paths in the state dir: the marker is checked as any input. */
        if (qemu_snapshot_placed_parse(text, &disks) < 0)
                log_warning("Boot cache: ignoring the unreadable %s", marker);
        for (size_t i = 0; disks && disks[i]; i++) {
                (void) snprintf(path, sizeof path, "%s/%s", state_dir, disks[i]);
                if (unlink(path) == 0)
                        log_info("Boot cache: removed %s, which a restore had put in place for a guest that never "
                                 "ran on it",
                                 path);
        }
        (void) unlink(marker);
}

void qemu_bootdisk_keep(const char *state_dir) {
        _cleanup_free_ char *marker = placed_path(state_dir);

        if (marker)
                (void) unlink(marker);
}

/* @saved of the snapshot as @to (through a temporary name beside it: the
 * start script must find a whole disk or none). */
static int place_one(const char *dir, const char *saved, const char *to, const char *rel) {
        _cleanup_free_ char *from = NULL, *tmp = NULL, *parent = strdup(to);
        unsigned long long t0 = now_usec();
        struct copy_stats st;
        int r;

        if (!parent || asprintf(&from, "%s/%s", dir, saved) < 0 || asprintf(&tmp, "%s.vigil-restore", to) < 0)
                return -ENOMEM;
        r = mkdir_p(dirname(parent), 0755);
        if (r < 0)
                return r;
        (void) unlink(tmp);
        r = disk_copy(from, tmp, false, &st);
        if (r >= 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, to, RENAME_NOREPLACE) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        log_info("Boot cache: put the disk %s back from the snapshot in %.0f ms (%s, %.1f MiB, %.1f MiB of data)", rel,
                 (double) (now_usec() - t0) / USEC_PER_MSEC, st.reflinked ? "reflink" : "sparse copy",
                 (double) st.size / (1 << 20), (double) st.allocated / (1 << 20));
        return 0;
}

int qemu_bootdisk_restore(const char *dir, const char *state_dir, char *ret_exists, size_t size) {
        struct qemu_snapshot_disk *d = NULL;
        _cleanup_strv_free_ char **rels = NULL;
        _cleanup_free_ char *marker = placed_path(state_dir), *text = NULL;
        char path[4400];
        size_t n = 0;
        struct stat st;
        int r;

        r = manifest_read(dir, &d, &n);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        rels = calloc(n + 1, sizeof *rels);
        if (!rels || !marker) {
                r = -ENOMEM;
                goto out;
        }
        /* All checked before any is placed: either every disk is the snapshot's, or none. */
        for (size_t i = 0; i < n; i++) {
                (void) snprintf(path, sizeof path, "%s/%s", state_dir, d[i].rel);
                if (lstat(path, &st) == 0) {
                        (void) snprintf(ret_exists, size, "%s", d[i].rel);
                        r = -EEXIST;
                        goto out;
                }
                rels[i] = strdup(d[i].rel);
                if (!rels[i]) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        /* Listed before the first copy: whoever finds the list knows they are no guest's. */
        r = qemu_snapshot_placed_format(rels, &text);
        if (r >= 0)
                r = write_file_atomic(marker, text, 0644, true);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < n; i++) {
                (void) snprintf(path, sizeof path, "%s/%s", state_dir, d[i].rel);
                r = place_one(dir, d[i].saved, path, d[i].rel);
                if (r < 0) {
                        log_warning("Boot cache: could not put the disk %s back from the snapshot: %s", d[i].rel,
                                    strerror(-r));
                        qemu_bootdisk_unplace(state_dir);
                        goto out;
                }
        }
        r = 1;
out:
        qemu_snapshot_disks_free(d, n);
        return r;
}

int qemu_bootdisk_refusal(const char *dir, char **ret) {
        _cleanup_free_ char *path = NULL;
        char *text = NULL;
        int r;

        if (asprintf(&path, "%s/" QEMU_SNAPSHOT_NO_SNAPSHOT, dir) < 0)
                return -ENOMEM;
        r = read_file_max(path, 4096, &text);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = 0;
        *ret = text;
        return 1;
}

int qemu_bootdisk_refuse(const char *dir, const char *why) {
        _cleanup_free_ char *path = NULL, *text = NULL;

        if (asprintf(&path, "%s/" QEMU_SNAPSHOT_NO_SNAPSHOT, dir) < 0 || asprintf(&text, "%s\n", why) < 0)
                return -ENOMEM;
        return write_file_atomic(path, text, 0644, true);
}
