#!/usr/bin/env bash
# Make sure a MySQL-compatible server binary (mariadbd or mysqld) is on this machine, for the
# private database that `mlbridge db local`, `make demo` and `make test` start. Installs the
# distribution's mariadb-server package when run as root; otherwise says what to do.
set -euo pipefail
for name in mariadbd mysqld; do
    for dir in $(echo "$PATH" | tr ':' ' ') /usr/sbin /usr/local/sbin /usr/libexec; do
        if [ -x "$dir/$name" ]; then exit 0; fi
    done
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "no mariadbd or mysqld found: installing the distribution's mariadb-server package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq mariadb-server >/dev/null
    exit 0
fi
echo "no mariadbd or mysqld on this machine: install one (sudo apt-get install mariadb-server), then run make again" >&2
exit 1
