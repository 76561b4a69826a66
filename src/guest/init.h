/* Booting the guest as PID 1 (init.c): mounts, the channel, power off. */
#pragma once

#include "agent.h"

void agent_init_system(struct agent *a);
void agent_power_off(struct agent *a);
/* Brings lo up in the current network namespace: 0 or a negative errno. */
int agent_loopback_up(void);
int agent_open_channel(const char *path_override, struct error **err);
/* Mounts the host's virtio-9p share TAG on DIR with the given cache mode. */
int agent_mount_9p(const char *tag, const char *dir, unsigned long flags, const char *cache);
/* Mounts the host's share TAG on DIR: 9p, or virtiofs when the host said so. */
int agent_mount_share(const struct agent *a, const char *tag, const char *dir, unsigned long flags);
