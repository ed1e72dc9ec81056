#!/usr/bin/env bash
# Make sure this machine has a MySQL-compatible server binary (mariadbd or mysqld), for the
# private database that `mlbridge db local`, `make demo` and `make test` start, and a
# command-line client (mariadb or mysql), which the demo and the tests use as a DBA would.
# Installs the distribution's packages when run as root; otherwise says what to do.
set -euo pipefail

have() {
    for name in "$@"; do
        for dir in $(echo "$PATH" | tr ":" " ") /usr/bin /usr/sbin /usr/local/bin /usr/local/sbin /usr/libexec; do
            if [ -x "$dir/$name" ]; then return 0; fi
        done
    done
    return 1
}

missing=()
have mariadbd mysqld || missing+=(mariadb-server)
have mariadb mysql || missing+=(mariadb-client)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing the distribution's ${missing[*]} (no MySQL-compatible server or client found)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
    exit 0
fi
echo "this machine lacks ${missing[*]}: install it (sudo apt-get install ${missing[*]}), then run make again" >&2
exit 1
