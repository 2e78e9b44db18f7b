#!/usr/bin/env bash
# Restore a backup set written by backup.sh: database, submissions and test sets.
#
#   restore.sh /srv/katakana/backups/20270110T020000Z-diff
#
# Stop everything but PostgreSQL first (docker compose stop web worker beat worker-gpu0 ...).
# A diff set is restored on top of its BASE full set. Checksums are verified before
# anything is touched. The database is restored with --clean (its tables are replaced);
# files are extracted into the parents of KATAKANA_SUBMISSIONS_DIR / KATAKANA_TESTSETS_DIR.
set -euo pipefail

SET=${1:?usage: restore.sh BACKUP_SET_DIR}
SET=$(cd "$SET" && pwd)
SUBMISSIONS_DIR=${KATAKANA_SUBMISSIONS_DIR:-/srv/katakana/submissions}
TESTSETS_DIR=${KATAKANA_TESTSETS_DIR:-/srv/katakana/testsets}

sets=("$SET")
if [ -f "$SET/BASE" ]; then
  sets=("$(dirname "$SET")/$(cat "$SET/BASE")" "$SET")
fi
for s in "${sets[@]}"; do
  (cd "$s" && sha256sum --check --quiet SHA256SUMS) || { echo "checksum mismatch in $s" >&2; exit 1; }
done

if [ -n "${DATABASE_URL:-}" ]; then
  pg_restore --clean --if-exists --no-owner --exit-on-error --dbname="$DATABASE_URL" "$SET/db.dump"
else
  pg_restore --clean --if-exists --no-owner --exit-on-error --dbname="${PGDATABASE:-katakana}" \
    "$SET/db.dump"
fi
mkdir -p "$(dirname "$SUBMISSIONS_DIR")" "$(dirname "$TESTSETS_DIR")"
for s in "${sets[@]}"; do
  # --listed-incremental=/dev/null: replay the incremental archive (also removes zips
  # that were purged before the differential was taken).
  tar --extract --file="$s/submissions.tar" --listed-incremental=/dev/null \
    -C "$(dirname "$SUBMISSIONS_DIR")"
done
tar --extract --gzip --file="$SET/testsets.tar.gz" -C "$(dirname "$TESTSETS_DIR")"
echo "restored $SET; now run: docker compose run --rm web python manage.py verify_testsets"
