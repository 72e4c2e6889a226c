/* SPDX-License-Identifier: MIT */
/*
 * run-main.h: the `vigil run` verb (and the reference driver's front door),
 * called by vigil-main.c. Returns the process exit code (exit-status.h).
 */
#pragma once

int run_main(int argc, char **argv);
