#!/usr/bin/env bash
# Debian packages the browser tests need (Chromium for Playwright; no browser download).
# Installs them only when missing and when we may (root with apt); otherwise says what to install.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure_system_deps: installing chromium (Debian package) for the browser tests" >&2
  (apt-get install -y -q chromium >/dev/null 2>&1) || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
else
  echo "ensure_system_deps: /usr/bin/chromium is missing; install Debian's 'chromium' package for the browser tests" >&2
fi
