#!/bin/sh
# Entrypoint of the worker image: publish the harness where the host can mount it, then exec.
#
# The worker asks the HOST's Docker daemon to start each sandbox, and the daemon resolves
# bind-mount sources on the host, not in this container. So every path a sandbox mounts
# (run directory, test set, harness) must exist at the same path on both sides:
# /srv/katakana/{runs,testsets} are bind-backed volumes at identical paths (compose.yaml),
# and the harness is copied from this image to /srv/katakana/harness/<content hash>/.
# The hash keeps two image versions (during an upgrade) from overwriting each other's copy.
set -eu

HARNESS_SRC=/app/sandbox/runner
HARNESS_ROOT=${KATAKANA_HARNESS_ROOT:-/srv/katakana/harness}
if [ -d "$HARNESS_ROOT" ]; then
  hash=$(cd "$HARNESS_SRC" && find . -type f ! -name '*.pyc' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
  dest="$HARNESS_ROOT/$hash"
  if [ ! -f "$dest/harness.py" ]; then
    tmp=$(mktemp -d "$HARNESS_ROOT/.tmp-XXXXXX")
    (cd "$HARNESS_SRC" && find . -type f ! -name '*.pyc' -exec cp --parents {} "$tmp/" \;)
    chmod -R a+rX "$tmp"
    mv -T "$tmp" "$dest" 2>/dev/null || rm -rf "$tmp"  # another worker won the race: fine
  fi
  # Read by scoring (ScoreConfig.harness_dir) once settings exposes it; see docs/deploy.md.
  export KATAKANA_HARNESS_DIR="$dest"
fi
# Scratch space for zips copied out of storage: on the runs volume, not the overlay layer.
if [ -n "${KATAKANA_RUNS_DIR:-}" ]; then
  mkdir -p "$KATAKANA_RUNS_DIR/tmp"
  export TMPDIR="$KATAKANA_RUNS_DIR/tmp"
fi
exec "$@"
