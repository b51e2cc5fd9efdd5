#!/bin/sh
# Install the Debian packages named as arguments (and python3-venv if venv is missing) when
# they are not installed yet: with apt-get as root, otherwise print the command to run.
set -eu
missing=""
if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
    missing="python3-venv"
fi
for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    echo "twin setup: installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
else
    echo "twin setup: missing Debian packages:$missing" >&2
    echo "run: sudo apt-get install -y$missing   (then make again)" >&2
    exit 1
fi
