/* SPDX-License-Identifier: MIT */
/*
 * script-paths.c owns the choice of the Python package directory. Order:
 *   1. $VIGIL_PYTHON_DIR (tests, packagers);
 *   2. the source tree, when this executable lives in the build tree;
 *   3. <exe>/../../<python_sitedir> (a relocated install, e.g. a nix store
 *      path: vigil-script lives in <prefix>/libexec/vigil/);
 *   4. the configured <prefix>/<python_sitedir> (the embedded Python's
 *      site-packages, where mypy finds test_driver too);
 *   5. the source tree as a last resort.
 * A build-tree binary must not pick up an older installed copy, and an
 * installed one must not depend on the source tree still existing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "script-paths.h"

static bool path_under(const char *path, const char *root) {
        size_t n;

        if (!path || !root || !*root)
                return false;
        n = strlen(root);
        return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static int push(char **ret, size_t n_ret, size_t *n, const char *a, const char *b) {
        char *s;

        if (*n + 1 >= n_ret)
                return -ENOBUFS;
        if (asprintf(&s, "%s%s", a, b) < 0)
                return -ENOMEM;
        ret[(*n)++] = s;
        ret[*n] = NULL;
        return 0;
}

int script_python_dir_candidates(const struct script_path_inputs *in, char **ret, size_t n_ret) {
        size_t n = 0;
        int r = 0;

        if (n_ret == 0)
                return -ENOBUFS;
        ret[0] = NULL;
        if (in->env_dir && *in->env_dir)
                r = push(ret, n_ret, &n, in->env_dir, "");
        if (r >= 0 && in->source_root && path_under(in->exe, in->build_root))
                r = push(ret, n_ret, &n, in->source_root, "/workers/script/python");
        if (r >= 0 && in->exe && in->sitedir_rel && *in->sitedir_rel) {
                const char *slash = strrchr(in->exe, '/');

                if (slash && slash != in->exe) {
                        _cleanup_free_ char *dir = strndup(in->exe, (size_t) (slash - in->exe));

                        if (!dir)
                                r = -ENOMEM;
                        else {
                                _cleanup_free_ char *rel = NULL;

                                if (asprintf(&rel, "/../../%s", in->sitedir_rel) < 0)
                                        r = -ENOMEM;
                                else
                                        r = push(ret, n_ret, &n, dir, rel);
                        }
                }
        }
        if (r >= 0 && in->pkgdir && *in->pkgdir)
                r = push(ret, n_ret, &n, in->pkgdir, "");
        if (r >= 0 && in->source_root && *in->source_root && !path_under(in->exe, in->build_root))
                r = push(ret, n_ret, &n, in->source_root, "/workers/script/python");
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        free(ret[i]);
                ret[0] = NULL;
                return r;
        }
        return (int) n;
}

int script_python_dir_find(const struct script_path_inputs *in, char **ret) {
        char *cand[SCRIPT_PATH_CANDIDATES_MAX + 1];
        int n, r = -ENOENT;

        n = script_python_dir_candidates(in, cand, ELEMENTSOF(cand));
        if (n < 0)
                return n;
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *probe = NULL;

                if (r == -ENOENT && asprintf(&probe, "%s/test_driver/__init__.py", cand[i]) >= 0 &&
                    access(probe, R_OK) == 0) {
                        *ret = cand[i];
                        cand[i] = NULL;
                        r = 0;
                }
                free(cand[i]);
        }
        return r;
}
