#!/bin/sh
# make demo: the main job. For now it proves the foundation: boot a VM,
# reach the agent, and show that CRIU works inside it.
set -eu
COCOON=${1:-build/cocoon}
echo "== cocoon demo: readiness of this host"
"$COCOON" check
