/* SPDX-License-Identifier: MIT */
/*
 * run-ps.h: the `vigil ps` verb (run-ps.c), called by vigil-main.c. Returns
 * the process exit code (exit-status.h).
 */
#pragma once

int run_ps_main(int argc, char **argv);
