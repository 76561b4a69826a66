/* The engine's network inside the guest: each virtio-net device the host
 * gave the VM (found by MAC) moves into the container's network namespace
 * under the engine's name, with the engine's MTU, addresses and routes.
 * See docs/networking.md. */
#pragma once

#include <stddef.h>

#include "error.h"
#include "proto.h"

/* Configures the network namespace netns_fd from spec. Returns 0, or a
 * negative errno value with *ERR naming the interface and the cause. The agent steps into the
 * namespace and back; it has no threads. */
int net_configure(const Cocoon__NetworkSpec *spec, int netns_fd, struct error **err);
