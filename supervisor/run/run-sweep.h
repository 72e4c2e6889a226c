/* SPDX-License-Identifier: MIT */
/*
 * run-sweep.h: what a killed `vigil run` leaves on the host, found and removed
 * by the next run (run-sweep.c).
 */
#pragma once

#include <sys/types.h>

/* The start time of @pid (field 22 of /proc/PID/stat), 0 if it is gone: with
 * the pid, it names a process without the risk of pid reuse. */
unsigned long long run_sweep_start_time(pid_t pid);

/* Write @dir/owner ("PID STARTTIME" of this process), so a later run can tell
 * a directory whose vigil was killed from a live one. */
void run_sweep_mark_owner(const char *dir);
/* Remove the vigil-XXXXXXXX run directories under @base whose owner is gone. */
void run_sweep_tmp_dirs(const char *base);
/* Remove /run/systemd/nspawn/propagate/vigil-* directories that no running
 * systemd-nspawn owns (nspawn leaves them behind when it is SIGKILLed). */
void run_sweep_nspawn_propagate(void);
