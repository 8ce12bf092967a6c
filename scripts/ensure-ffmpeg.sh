#!/usr/bin/env bash
# Debian's ffmpeg: video posters and voice notes converted to OGG/Opus (inbox/transcode.py). Optional for
# the product (without it videos show without a poster and audio is sent unconverted), needed by the tests
# of those features. Used by `make run` and `make test`; root installs it, anyone else is told how.
set -euo pipefail
if command -v "${FFMPEG_BINARY:-ffmpeg}" >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "ffmpeg is missing (videos get no poster, audio is not converted to voice notes): run 'sudo apt-get install ffmpeg'" >&2
  exit 1
fi
echo "installing Debian's ffmpeg (video posters, voice notes)" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
