/* SPDX-License-Identifier: MIT */
/*
 * script-paths.h: where vigil-script finds its Python package (test_driver +
 * vigil). A table of candidates in order of preference; the first directory
 * that holds test_driver/__init__.py wins.
 */
#pragma once

#include <stddef.h>

#define SCRIPT_PATH_CANDIDATES_MAX 5

struct script_path_inputs {
        const char *env_dir;     /* $VIGIL_PYTHON_DIR, or NULL */
        const char *exe;         /* /proc/self/exe, resolved */
        const char *build_root;  /* VIGIL_BUILD_ROOT */
        const char *source_root; /* VIGIL_SOURCE_ROOT */
        const char *sitedir_rel; /* VIGIL_PYTHON_SITEDIR_REL (relative to the prefix), or "" */
        const char *pkgdir;      /* VIGIL_PYTHON_PKGDIR (<prefix>/<python_sitedir>) */
};

/* Fill @ret (malloc'd strings, NULL-terminated, at most
 * SCRIPT_PATH_CANDIDATES_MAX + 1 slots) with the directories to try. Pure. */
int script_python_dir_candidates(const struct script_path_inputs *in, char **ret, size_t n_ret);

/* The first candidate holding test_driver/__init__.py (malloc'd), -ENOENT if
 * none does. */
int script_python_dir_find(const struct script_path_inputs *in, char **ret);
