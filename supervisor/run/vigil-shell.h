/* SPDX-License-Identifier: MIT */
/*
 * vigil-shell.h: the `vigil shell` verb, called by vigil-main.c. Returns the
 * process exit code (docs/cli.md, "SHELL").
 */
#pragma once

int vigil_shell_main(int argc, char **argv);
