#!/usr/bin/env bash
# Install what tests/test_bench_remote.py needs to test `edgekd bench` over a real ssh connection:
# the OpenSSH server (the test starts its own sshd on 127.0.0.1, a free port, generated host and
# user keys; nothing is configured system-wide and no service is started here), the ssh client
# and rsync. Without them that test skips with the reason.
# Usage (CI, Debian/Ubuntu image): tools/ci_sshd.sh
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
sshd_bin() { command -v sshd 2>/dev/null || { [ -x /usr/sbin/sshd ] && echo /usr/sbin/sshd; } || true; }

if [ -n "$(sshd_bin)" ] && have ssh && have ssh-keygen && have rsync; then
  echo "sshd, ssh, ssh-keygen and rsync already present: $(sshd_bin)"
else
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    have sudo || { echo "need root or sudo to apt-get install openssh-server rsync" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends openssh-server openssh-client rsync
  # A system sshd that the package may start on port 22 is left alone: the test uses its own port.
fi
# sshd started as root insists on its privilege-separation directory.
if [ "$(id -u)" -eq 0 ]; then mkdir -p /run/sshd; elif have sudo; then sudo mkdir -p /run/sshd; fi
echo "ready: $(sshd_bin) ($(ssh -V 2>&1)), $(rsync --version | head -1)"
