#!/usr/bin/env bash
# GNU gettext (msgfmt, xgettext, msgmerge): Django's compilemessages and makemessages call them to build the
# UI's translations (locale/, docs/i18n.md). Installed from Debian when missing (root only).
set -euo pipefail
if command -v msgfmt >/dev/null 2>&1 && command -v xgettext >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "gettext is missing: run 'sudo apt-get install gettext'" >&2
  exit 1
fi
echo "installing Debian's gettext for the translations" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gettext >/dev/null
