#!/usr/bin/env bash
# Compare the PostgreSQL schema two migration chains build (docs/operations.md, "Migrations").
#
#   scripts/compare-schema.sh OLD [NEW]
#
# OLD and NEW are each a git ref (a commit, a branch) or a directory holding a checkout; NEW defaults to
# this working tree, uncommitted changes included. Each side is migrated from scratch into a database of
# its own (named after DATABASE_URL's, suffixed _schema_old / _schema_new, created and dropped here), then
# `pg_dump --schema-only` of both (django_migrations' rows are data, so not in it) and the rows the
# migrations seed (django-celery-beat's schedules) are diffed. Exit 0 when they are the same, 1 when
# not (the diff is printed), 2 on a usage or migration error.
#
# The one difference forgiven: the order of a table's columns. A squashed CreateModel lists a model's
# columns in field order, where the old chain appended each AddField at the end; the columns (names,
# types, defaults, nullability) must still be the same, so each table's column lines are sorted before
# the diff, and the tables whose order differs are named (informational).
#
# SCHEMA_DUMPS=DIR keeps the dumps (raw and normalised) there.
# Uses the repository's .venv python (the one beside this script) for both sides.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
py="$here/.venv/bin/python"
[[ $# -ge 1 && $# -le 2 ]] || { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/inbox}"
[[ "$url" == postgres* ]] || { echo "DATABASE_URL must name PostgreSQL (got $url)" >&2; exit 2; }
base="${url%/*}"
name="${url##*/}"; name="${name%%\?*}"
host_opts=$("$py" - "$url" <<'EOF'
import sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
print(f"-h {u.hostname or '127.0.0.1'} -p {u.port or 5432} -U {u.username or 'postgres'}")
EOF
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# tree SIDE SPEC: a directory with the SPEC's files (a checkout, or a git archive of a ref).
tree() {
    local side="$1" spec="$2"
    if [[ -d "$spec" ]]; then
        (cd "$spec" && pwd)
    else
        mkdir -p "$work/$side"
        git -C "$here" archive "$spec" | tar -x -C "$work/$side"
        echo "$work/$side"
    fi
}

# build SIDE DIR: migrate DIR's chain into a fresh database, dump its schema and seeded rows.
build() {
    local side="$1" dir="$2" db="${name}_schema_$1"
    # shellcheck disable=SC2086
    dropdb $host_opts --if-exists "$db" 2>/dev/null
    # shellcheck disable=SC2086
    createdb $host_opts "$db"
    if ! (cd "$dir" && DATABASE_URL="$base/$db" DJANGO_SETTINGS_MODULE=config.settings.local \
            "$py" manage.py migrate --noinput -v 0) >"$work/$side.migrate.log" 2>&1; then
        cat "$work/$side.migrate.log" >&2
        echo "migrating $side ($dir) failed" >&2
        exit 2
    fi
    # shellcheck disable=SC2086
    pg_dump $host_opts --schema-only --no-owner --no-privileges "$db" >"$work/$side.sql"
    # shellcheck disable=SC2086
    psql $host_opts -X -A -t -d "$db" -c "
        SELECT 'periodic task: ' || t.name || ' | ' || t.task || ' | enabled=' || t.enabled
               || ' | every ' || coalesce(i.every || ' ' || i.period, '-')
               || ' | crontab ' || coalesce(c.minute || ' ' || c.hour || ' ' || c.day_of_month || ' '
                                            || c.month_of_year || ' ' || c.day_of_week || ' ' || c.timezone, '-')
          FROM django_celery_beat_periodictask t
          LEFT JOIN django_celery_beat_intervalschedule i ON i.id = t.interval_id
          LEFT JOIN django_celery_beat_crontabschedule c ON c.id = t.crontab_id
         ORDER BY 1" >"$work/$side.rows"
    # shellcheck disable=SC2086
    dropdb $host_opts "$db"
}

old_dir="$(tree old "$1")"
new_dir="$(tree new "${2:-$here}")"
build old "$old_dir"
build new "$new_dir"

# Normalise: no comments or blank lines; each CREATE TABLE's column lines sorted (commas evened out).
"$py" - "$work" <<'EOF'
import re
import sys
from pathlib import Path

work = Path(sys.argv[1])
orders = {}
for side in ("old", "new"):
    out, table, columns = [], None, []
    for line in (work / f"{side}.sql").read_text().splitlines():
        if not line.strip() or line.startswith(("--", "\\restrict", "\\unrestrict")):  # pg_dump's random keys
            continue
        if table is None and (m := re.match(r"CREATE TABLE (\S+) \($", line)):
            table, columns = m.group(1), []
            out.append(line)
        elif table is not None and line == ");":
            orders.setdefault(table, {})[side] = [c.split()[0] for c in columns]
            out.extend(f"{c}," for c in sorted(columns))
            out.append(line)
            table = None
        elif table is not None:
            columns.append(line.rstrip(","))
        else:
            out.append(line)
    (work / f"{side}.norm.sql").write_text("\n".join(out) + "\n")
reordered = sorted(t for t, o in orders.items() if len(o) == 2 and o["old"] != o["new"] and sorted(o["old"]) == sorted(o["new"]))
if reordered:
    print(f"(columns in another order, forgiven: {', '.join(reordered)})")
EOF

if [[ -n "${SCHEMA_DUMPS:-}" ]]; then  # keep the dumps to read them
    mkdir -p "$SCHEMA_DUMPS" && cp "$work"/{old,new}.{sql,norm.sql,rows} "$SCHEMA_DUMPS"/
fi
status=0
diff -u --label "old schema ($1)" --label "new schema (${2:-working tree})" "$work/old.norm.sql" "$work/new.norm.sql" || status=1
diff -u --label "old seeded rows" --label "new seeded rows" "$work/old.rows" "$work/new.rows" || status=1
if [[ $status -eq 0 ]]; then
    echo "same schema and seeded rows: $(grep -c '^CREATE' "$work/new.norm.sql") CREATE statements, $(wc -l <"$work/new.rows") periodic tasks"
fi
exit $status
