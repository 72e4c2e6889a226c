/* SPDX-License-Identifier: MIT */
/*
 * test-script-paths: where vigil-script looks for its Python package. A
 * build-tree binary prefers the source tree (never a stale installed copy),
 * an installed one prefers its relocated site-packages, then the configured one,
 * and $VIGIL_PYTHON_DIR always wins.
 */
#include <string.h>

#include "macro.h"
#include "script-paths.h"
#include "tap.h"

static int cands(const struct script_path_inputs *in, char **v) {
        return script_python_dir_candidates(in, v, SCRIPT_PATH_CANDIDATES_MAX + 1);
}

static void freev(char **v) {
        for (; *v; v++)
                free(*v);
}

int main(void) {
        char *v[SCRIPT_PATH_CANDIDATES_MAX + 1];
        int n;

        n = cands(&(struct script_path_inputs){.exe = "/src/build/workers/script/vigil-script",
                                               .build_root = "/src/build",
                                               .source_root = "/src",
                                               .sitedir_rel = "lib/python3/dist-packages",
                                               .pkgdir = "/usr/lib/python3/dist-packages"},
                  v);
        CHECK(n == 3, "build tree: three candidates (got %d)", n);
        CHECK(n == 3 && streq(v[0], "/src/workers/script/python"), "build tree: source first");
        CHECK(n == 3 && streq(v[1], "/src/build/workers/script/../../lib/python3/dist-packages"),
              "then next to the exe");
        CHECK(n == 3 && streq(v[2], "/usr/lib/python3/dist-packages"), "then the installed site-packages");
        freev(v);

        n = cands(&(struct script_path_inputs){.exe = "/nix/store/x-vigil/libexec/vigil/vigil-script",
                                               .build_root = "/build/b",
                                               .source_root = "/build/src",
                                               .sitedir_rel = "lib/python3.13/site-packages",
                                               .pkgdir = "/nix/store/x-vigil/lib/python3.13/site-packages"},
                  v);
        CHECK(n == 3, "installed: three candidates");
        CHECK(n == 3 && streq(v[0], "/nix/store/x-vigil/libexec/vigil/../../lib/python3.13/site-packages"),
              "installed: next to the exe first");
        CHECK(n == 3 && streq(v[2], "/build/src/workers/script/python"), "installed: source tree last");
        freev(v);

        n = cands(&(struct script_path_inputs){.env_dir = "/override",
                                               .exe = "/src/buildX/vigil-script",
                                               .build_root = "/src/build",
                                               .source_root = "/src",
                                               .sitedir_rel = "lib/py",
                                               .pkgdir = "/d"},
                  v);
        CHECK(n >= 1 && streq(v[0], "/override"), "$VIGIL_PYTHON_DIR wins");
        CHECK(n == 4 && streq(v[3], "/src/workers/script/python"), "/src/buildX is not under /src/build");
        freev(v);

        n = cands(&(struct script_path_inputs){.exe = "/opt/v/libexec/vigil/vigil-script", .pkgdir = "/usr/lib/py"},
                  v);
        CHECK(n == 1 && streq(v[0], "/usr/lib/py"), "an absolute site dir: no relocated candidate");
        freev(v);

        n = script_python_dir_candidates(
                &(struct script_path_inputs){.env_dir = "/a", .sitedir_rel = "lib/py", .pkgdir = "/d"}, v, 2);
        CHECK(n < 0 && v[0] == NULL, "too small an array is refused, nothing leaks");
        return tap_done();
}
