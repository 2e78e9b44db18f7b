#!/usr/bin/env bash
# Prepare a host for deploy/compose.yaml (run as root, from anywhere; idempotent):
#  * the data directories under /srv/katakana, with the owners the containers expect
#    (web runs as uid 10001 and writes submissions and test sets; workers run as root);
#  * deploy/.env from .env.example with fresh secrets, if it does not exist yet.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=/srv/katakana
APP_UID=10001

install -d -m 0755 "$ROOT"
install -d -m 0750 -o "$APP_UID" -g "$APP_UID" "$ROOT/submissions" "$ROOT/testsets"
# Run directories hold learner code while it runs: root-only (see sandbox/docker_backend.py).
install -d -m 0700 -o root -g root "$ROOT/runs"
install -d -m 0755 -o root -g root "$ROOT/harness"
install -d -m 0700 -o root -g root "${KATAKANA_BACKUP_HOST_DIR:-$ROOT/backups}"
install -d -m 0755 certs

if [ ! -f .env ]; then
  secret() { python3 -c "import secrets; print(secrets.token_hex($1))"; }
  umask 077
  sed -e "s/^DJANGO_SECRET_KEY=$/DJANGO_SECRET_KEY=$(secret 32)/" \
      -e "s/^POSTGRES_PASSWORD=$/POSTGRES_PASSWORD=$(secret 24)/" \
      -e "s/^REDIS_PASSWORD=$/REDIS_PASSWORD=$(secret 24)/" \
      -e "s/^KATAKANA_METRICS_TOKEN=$/KATAKANA_METRICS_TOKEN=$(secret 24)/" \
      .env.example > .env
  echo "wrote $(pwd)/.env with fresh secrets: now set the domain, e-mail and GPU lines in it"
fi
# /out of a sandbox must be capped by the kernel (sandbox/outfs.py). A worker in a
# container cannot mount a tmpfs per run, so the run directories live on a fixed-size
# filesystem of their own (a loop-mounted ext4 image): whatever a run hides in /out,
# it can fill at most this, never the host's disk. The size is KATAKANA_RUNS_FS_MAX_MB.
runs_mb=$(sed -n 's/^KATAKANA_RUNS_FS_MAX_MB=\([0-9][0-9]*\)$/\1/p' .env | tail -n1)
if [ "${runs_mb:-0}" -gt 0 ] && ! mountpoint -q "$ROOT/runs"; then
  image="$ROOT/runs.ext4"
  if [ ! -f "$image" ]; then
    truncate -s "${runs_mb}M" "$image"
    mkfs.ext4 -q -m 0 "$image"
  fi
  mount -o loop,nosuid,nodev "$image" "$ROOT/runs"
  chmod 0700 "$ROOT/runs"
  grep -q " $ROOT/runs " /etc/fstab ||
    echo "$image $ROOT/runs ext4 loop,nosuid,nodev 0 0" >> /etc/fstab
fi
echo "host ready: $ROOT"
