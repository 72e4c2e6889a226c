/* SPDX-License-Identifier: MIT */
/*
 * sup-cgroup.h: cgroups of their own for spawned processes that manage a
 * subtree (systemd-nspawn), and the run's groups swept at its end.
 */
#pragma once

/* The relative group "vigil/<run>/<child>.<proc>" made in every present hierarchy. */
int sup_cgroup_create(const char *run_id, const char *child, const char *proc, char **ret_rel);
/* Move the calling process into it (in the forked child, before exec). */
int sup_cgroup_join(const char *rel);
void sup_cgroup_remove(const char *rel);
/* At the end of a run: remove what is left of its groups, waiting (bounded)
 * for killed processes to leave them. */
void sup_cgroup_remove_run(const char *run_id);
void sup_cgroup_sweep(void);
