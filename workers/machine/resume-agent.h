/* SPDX-License-Identifier: MIT */
/*
 * resume-agent.h: what the machine worker and vigil-resume (resume-agent.c,
 * the program a boot-cache save leaves waiting in the guest) agree on: the
 * guest paths and the one request and answer between the resume job and
 * the agent. Shared by the hosted worker and the freestanding agent: macros
 * only.
 */
#pragma once

/* bash's $HOSTTYPE in the guests the agent runs in (the system calls it makes). */
#define RESUME_AGENT_ARCH "x86_64"

/* The agent's binary, its FIFOs and its pid, in the guest's /run (tmpfs). */
#define RESUME_AGENT_PATH "/run/vigil-resume"
#define RESUME_AGENT_IN   RESUME_AGENT_PATH ".in"  /* the request: "<usec> <uptime cs>[ <cont usec>]\n" */
#define RESUME_AGENT_OUT  RESUME_AGENT_PATH ".out" /* the answer: "ok\n", or what failed */
#define RESUME_AGENT_PID  RESUME_AGENT_PATH ".pid" /* "<the waiting child's pid> <version>\n" */
/* The pid file's second field: what the agent reads. 2: the request's third
 * field, the host's time when the VM went on. An agent of session 8 (still in
 * older snapshots) writes none and takes two fields only. */
#define RESUME_AGENT_VERSION "2"
/* The 9p shares the save unmounted, as /proc/mounts lines. */
#define RESUME_AGENT_SHARES "/run/vigil-9p"

/* The resume job prints this when the agent did its work (the worker logs it). */
#define RESUME_AGENT_DONE "vigil-resume: done"

/* Bounds on what the agent reads. */
#define RESUME_AGENT_REQUEST_MAX 128
#define RESUME_AGENT_SHARES_MAX  16384
