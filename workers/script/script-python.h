/* SPDX-License-Identifier: MIT */
/*
 * script-python.h: the embedded interpreter of vigil-script and the `_vigil`
 * extension module through which Python reaches the supervisor channel.
 */
#pragma once

#include "script-channel.h"

/* Start CPython with @pkgdir first on sys.path and check that the runner
 * (vigil._runner) imports. @ch serves `_vigil.request()`. */
int script_python_init(const char *pkgdir, struct script_channel *ch);

/* Run vigil._runner.main(@config_json): the verdict as an exit code and a
 * message (malloc'd). Returns < 0 only if the runner itself could not run. */
int script_python_run(const char *config_json, int *ret_code, char **ret_message);
