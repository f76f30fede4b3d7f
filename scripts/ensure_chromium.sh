#!/bin/sh
# Headless Chromium for the browser tests (tests/ui): Debian's package, since Playwright's own
# browser download is not reachable offline. Quiet when it is already there; needs root (CI) otherwise.
set -e
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null 2>&1
