/* SPDX-License-Identifier: MIT */
/*
 * sup-timeline.h: <outdir>/timeline.jsonl, one JSON object per lifecycle event.
 */
#pragma once

struct sup;
struct child;

int timeline_open(struct sup *s);
void timeline_write(struct sup *s, const char *event, struct child *c, const char *const *kv, const char *message);
