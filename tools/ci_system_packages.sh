#!/usr/bin/env bash
# Debian packages used by tests: openssh-server + rsync (remote bench over SSH on 127.0.0.1)
# and chromium (renders the HTML report headless). Idempotent.
set -euo pipefail
need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "system packages ready: sshd $( [ -x /usr/sbin/sshd ] && echo yes || echo no ), rsync $(command -v rsync >/dev/null && echo yes || echo no), chromium $(command -v chromium >/dev/null && echo yes || echo no)"
