#!/usr/bin/env bash
# http-check [PATH]: exits 0 when `GET PATH` (default /healthz) on this container's app answers 200.
# The image's HEALTHCHECK and compose.yaml run it. It needs nothing but bash (its /dev/tcp and
# builtins), so the runtime image carries no HTTP client such as curl.
set -euo pipefail

path="${1:-/healthz}"
exec 3<>"/dev/tcp/127.0.0.1/${PORT:-8080}"
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 5 status <&3
[[ "$status" == "HTTP/1.1 200 "* ]]
