#!/usr/bin/env bash
# System information: read-only. SECTIONS picks what to show (comma-separated).
set -u
want() { case ",${SECTIONS}," in *",all,"*|*",$1,"*) return 0 ;; *) return 1 ;; esac; }
section() { printf '\n== %s ==\n' "$1"; }

echo "host: $(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"
if want os; then
  section os
  if [ -r /etc/os-release ]; then . /etc/os-release; echo "os: ${PRETTY_NAME:-${NAME:-unknown}}"; fi
  echo "kernel: $(uname -srm)"
  echo "uptime: $(uptime 2>/dev/null || cat /proc/uptime)"
fi
if want cpu; then
  section cpu
  echo "cpus: $(getconf _NPROCESSORS_ONLN 2>/dev/null || grep -c ^processor /proc/cpuinfo)"
  grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/^model name[[:space:]]*: /model: /'
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
if want memory; then
  section memory
  if command -v free >/dev/null 2>&1; then free -h; else grep -E '^(MemTotal|MemAvailable|SwapTotal|SwapFree):' /proc/meminfo; fi
fi
if want disk; then
  section disk
  df -hP -x tmpfs -x devtmpfs -x overlay 2>/dev/null || df -hP
fi
if want network; then
  section network
  if command -v ip >/dev/null 2>&1; then ip -brief address 2>/dev/null || ip address
  else hostname -I 2>/dev/null || echo "note: ip is not installed; skipped"; fi
fi
exit 0
