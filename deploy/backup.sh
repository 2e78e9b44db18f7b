#!/usr/bin/env bash
# Back up the scoring server: pg_dump of the database + tar of submissions and test sets.
#
#   backup.sh once    one backup set now
#   backup.sh loop    a set every KATAKANA_BACKUP_INTERVAL_HOURS (the compose "backup" service)
#   backup.sh check   exit 0 if the last success is younger than two intervals (health check)
#
# A set is a directory <UTC stamp>-full or <UTC stamp>-diff in KATAKANA_BACKUP_DIR holding
# db.dump (pg_dump -Fc), submissions.tar (GNU tar --listed-incremental), submissions.snar,
# testsets.tar.gz and SHA256SUMS; a diff set also holds BASE, the name of its full set.
# Submission zips are written once and never changed, so a full tar every
# KATAKANA_BACKUP_FULL_EVERY_DAYS days plus daily differentials against it keeps each day
# small; restore = the full set, then the newest diff (deploy/restore.sh).
# Retention: sets older than KATAKANA_BACKUP_KEEP_DAYS are deleted, except a full set a
# kept diff needs and the newest full set (stopped backups never delete the last good one).
# Database connection: DATABASE_URL if set, else the libpq variables (PGHOST, PGUSER, ...).
set -euo pipefail

BACKUP_DIR=${KATAKANA_BACKUP_DIR:-/srv/katakana/backups}
SUBMISSIONS_DIR=${KATAKANA_SUBMISSIONS_DIR:-/srv/katakana/submissions}
TESTSETS_DIR=${KATAKANA_TESTSETS_DIR:-/srv/katakana/testsets}
KEEP_DAYS=${KATAKANA_BACKUP_KEEP_DAYS:-14}
FULL_EVERY_DAYS=${KATAKANA_BACKUP_FULL_EVERY_DAYS:-7}
INTERVAL_HOURS=${KATAKANA_BACKUP_INTERVAL_HOURS:-24}
MARKER="$BACKUP_DIR/last-success"

log() { printf '%s backup: %s\n' "$(date -u +%FT%TZ)" "$*"; }

newest_full() {
  # A full set younger than FULL_EVERY_DAYS, if any (the base for today's differential).
  find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '*-full' \
    -mmin "-$((FULL_EVERY_DAYS * 1440))" -printf '%f\n' | LC_ALL=C sort | tail -n 1
}

backup_once() {
  mkdir -p "$BACKUP_DIR"
  local stamp work base level
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  work="$BACKUP_DIR/.partial-$stamp"
  rm -rf "$work"
  mkdir -m 0700 "$work"
  # Database first: every row it holds already has its zip on disk (the file is written
  # before the row commits), so the tar taken next contains every zip the dump refers to.
  if [ -n "${DATABASE_URL:-}" ]; then
    pg_dump --format=custom --no-owner --dbname="$DATABASE_URL" --file="$work/db.dump"
  else
    pg_dump --format=custom --no-owner --file="$work/db.dump"
  fi
  base=$( [ "$FULL_EVERY_DAYS" -gt 0 ] && newest_full || true )
  if [ -n "$base" ]; then
    level=diff
    cp "$BACKUP_DIR/$base/submissions.snar" "$work/submissions.snar"
    printf '%s\n' "$base" > "$work/BASE"
  else
    level=full
  fi
  tar --create --file="$work/submissions.tar" --listed-incremental="$work/submissions.snar" \
    -C "$(dirname "$SUBMISSIONS_DIR")" "$(basename "$SUBMISSIONS_DIR")"
  tar --create --gzip --file="$work/testsets.tar.gz" \
    -C "$(dirname "$TESTSETS_DIR")" "$(basename "$TESTSETS_DIR")"
  (cd "$work" && sha256sum db.dump submissions.tar testsets.tar.gz > SHA256SUMS)
  mv "$work" "$BACKUP_DIR/$stamp-$level"
  touch "$MARKER"
  log "wrote $BACKUP_DIR/$stamp-$level ($(du -sh "$BACKUP_DIR/$stamp-$level" | cut -f1))"
  prune
}

prune() {
  local keep_full needed set
  keep_full=$(find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '*-full' -printf '%f\n' \
    | LC_ALL=C sort | tail -n 1)
  # Full sets that a diff we keep still depends on.
  needed=" $keep_full "
  while IFS= read -r set; do
    [ -f "$BACKUP_DIR/$set/BASE" ] && needed+="$(cat "$BACKUP_DIR/$set/BASE") "
  done < <(find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '*-diff' \
             -mmin "-$((KEEP_DAYS * 1440))" -printf '%f\n')
  while IFS= read -r set; do
    case "$needed" in *" $set "*) continue ;; esac
    # A diff newer than the newest full is never stale; only compare names (UTC stamps).
    if [[ "$set" == *-diff && -n "$keep_full" && "$set" > "$keep_full" ]]; then continue; fi
    log "retention: deleting $set"
    rm -rf -- "${BACKUP_DIR:?}/$set"
  done < <(find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '2*-*' \
             -mmin "+$((KEEP_DAYS * 1440))" -printf '%f\n')
  # Leftovers of interrupted runs.
  find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '.partial-*' -mmin +1440 \
    -exec rm -rf -- {} +
}

check() {
  [ -f "$MARKER" ] && [ -n "$(find "$MARKER" -mmin "-$((INTERVAL_HOURS * 120))")" ]
}

case "${1:-once}" in
  once) backup_once ;;
  check) check ;;
  loop)
    while true; do
      # After a restart, wait for the next due time instead of backing up again at once.
      if check && [ -n "$(find "$MARKER" -mmin "-$((INTERVAL_HOURS * 60))")" ]; then
        sleep 600
        continue
      fi
      # A child process: inside "||", bash would ignore set -e in backup_once itself.
      bash "$0" once || log "FAILED (will retry in 1 h)"
      check || sleep 3600
    done
    ;;
  *) echo "usage: $0 once|loop|check" >&2; exit 2 ;;
esac
