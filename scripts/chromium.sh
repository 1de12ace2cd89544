#!/bin/sh
# Make sure a headless Chromium and a font with Chinese glyphs are installed, then print the
# browser's path. Debian packages, installed with apt-get when missing (as root, or through sudo):
# Playwright's own browser downloads need internet access a build machine may not have, while the
# distribution's mirror is usually reachable. Without a CJK font the Chinese report would render
# as empty boxes, so the font is part of the check.
#   usage: scripts/chromium.sh            -> prints e.g. /usr/bin/chromium
set -eu

browser() {
    for name in chromium chromium-browser; do
        if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
    done
    return 1
}

has_cjk_font() {
    command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh family 2>/dev/null)" ]
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else echo "error: installing $* needs root (or sudo); install chromium and fonts-wqy-microhei yourself" >&2; exit 1
    fi
}

apt_install() {
    # Another apt run may hold dpkg's lock for a while: wait for it rather than fail.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" >&2 \
        || { as_root apt-get -o DPkg::Lock::Timeout=600 update -q >&2 \
             && as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" >&2; }
}

missing=""
browser >/dev/null || missing="chromium"
has_cjk_font || missing="$missing fonts-wqy-microhei fontconfig"
if [ -n "$missing" ]; then
    command -v apt-get >/dev/null 2>&1 || { echo "error: no apt-get here; install Chromium and a CJK font (e.g. WenQuanYi Micro Hei) yourself" >&2; exit 1; }
    # shellcheck disable=SC2086  # word splitting of the package list is wanted
    apt_install $missing
fi
browser || { echo "error: chromium is still missing after apt-get install chromium" >&2; exit 1; }
