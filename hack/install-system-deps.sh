#!/usr/bin/env bash
# Installs the Debian packages the test plane runs (and wrk, for bench/http.ts) (as throwaway instances started by the tests,
# never as system services): PostgreSQL with psql/pgbench, pgbouncer, OpenSSH server and client,
# nginx, openssl, tmux, chromium (headless, for the web viewer browser test), and python3, make and g++
# (npm ci builds ssh2's native crypto binding with them, docs/adr/0013). Does nothing when all are present.
set -euo pipefail
packages=(postgresql postgresql-client openssh-server openssh-client pgbouncer nginx-light openssl tmux ca-certificates wrk chromium python3 make g++)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "[deps] all system packages present"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "[deps] missing Debian packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "[deps] installing: ${missing[*]}"
# Keep package scripts from starting the system services; the tests start their own instances.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[[ $created_policy -eq 1 ]] && rm -f "$policy"' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
