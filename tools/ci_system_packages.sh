#!/usr/bin/env bash
# Debian packages used by tests: OpenSSH server/client + rsync (remote bench over SSH on
# 127.0.0.1, via tools/ci_sshd.sh) and chromium (renders the HTML report headless). Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
bash ./ci_sshd.sh
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
echo "chromium: $(chromium --version 2>/dev/null || echo absent)"
