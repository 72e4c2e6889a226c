/* SPDX-License-Identifier: MIT */
/*
 * sup-verbs.h: the verbs of the vigil executable, one file each; run/vigil-main.c
 * dispatches argv[1] through its table. Each returns the process exit code.
 */
#pragma once

int verb_supervise(int argc, char **argv);
