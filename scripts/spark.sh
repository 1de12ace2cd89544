#!/bin/sh
# Make sure what the spark engine needs is here: a Java 17 runtime (Debian's openjdk-17-jre-headless,
# installed with apt-get when `java` is missing, as root or through sudo) and, when a virtual
# environment is given, the `spark` extra (pyspark 4.0, the release Ibis 12 supports) in it; then
# print the Java version line.
#   usage: scripts/spark.sh [VENV]        (run from the project folder; e.g. scripts/spark.sh .venv)
set -eu

venv="${1:-}"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else echo "error: installing $* needs root (or sudo); install openjdk-17-jre-headless yourself" >&2; exit 1
    fi
}

apt_install() {
    # Another apt run may hold dpkg's lock for a while: wait for it rather than fail.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" >&2 \
        || { as_root apt-get -o DPkg::Lock::Timeout=600 update -q >&2 \
             && as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" >&2; }
}

java_major() {
    # `java -version` prints e.g. 'openjdk version "17.0.15" 2025-04-15' (or "1.8.0_392" for Java 8) on stderr.
    java -version 2>&1 | sed -n 's/.*version "\([0-9][0-9.]*\).*/\1/p' | head -n 1 | awk -F. '{ print ($1 == 1) ? $2 : $1 }'
}

if ! command -v java >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || { echo "error: no java and no apt-get here; install a Java 17 runtime and set JAVA_HOME" >&2; exit 1; }
    # The JVM's man pages are linked into a folder slim images leave out; dpkg fails without it.
    as_root mkdir -p /usr/share/man/man1
    apt_install openjdk-17-jre-headless
fi
major="$(java_major)"
case "$major" in
    17|21) ;;
    *) echo "error: java is version ${major:-unknown}; Spark 4.0 needs Java 17 or 21 (install openjdk-17-jre-headless, set JAVA_HOME)" >&2; exit 1 ;;
esac

if [ -n "$venv" ]; then
    [ -x "$venv/bin/pip" ] || { echo "error: no virtual environment at $venv (no $venv/bin/pip); make it with python3 -m venv $venv" >&2; exit 1; }
    "$venv/bin/pip" install -q -c constraints.txt -e '.[spark]' >&2
fi
java -version 2>&1 | head -n 1
