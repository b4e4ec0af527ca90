#!/bin/sh
# Prepares PGDATA from the build-time cluster when it is empty, sets the
# superuser's password from POSTGRES_PASSWORD (as the official image does),
# then runs the server with the remaining arguments (`-c name=value`...).
set -eu
if [ "${1:-}" = "postgres" ]; then shift; fi
as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups "$@"
    else
        "$@"
    fi
}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    cp -a "$PGSEED/." "$PGDATA/"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$PGDATA"; fi
    chmod 700 "$PGDATA"
fi
if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    escaped=$(printf '%s' "$POSTGRES_PASSWORD" | sed "s/'/''/g")
    printf "ALTER USER postgres PASSWORD '%s';\n" "$escaped" \
        | as_postgres postgres --single -D "$PGDATA" -j postgres >/dev/null
fi
if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" "$@"
fi
exec postgres -D "$PGDATA" "$@"
