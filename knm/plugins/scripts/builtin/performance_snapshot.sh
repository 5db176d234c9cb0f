#!/usr/bin/env bash
# Performance snapshot: read-only. Tools that are missing are skipped with a note.
set -u
have() { command -v "$1" >/dev/null 2>&1 || { echo "note: $1 is not installed; skipped"; return 1; }; }
section() { printf '\n== %s ==\n' "$1"; }

echo "host: $(hostname 2>/dev/null) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
section load
echo "loadavg: $(cat /proc/loadavg)"
echo "cpus: $(getconf _NPROCESSORS_ONLN 2>/dev/null)"
section memory
if have free; then free -m; fi
section "pressure (PSI)"
for kind in cpu memory io; do
  if [ -r "/proc/pressure/$kind" ]; then echo "$kind: $(head -n1 "/proc/pressure/$kind")"; fi
done
section "vmstat ${INTERVAL}s x ${SAMPLES}"
if have vmstat; then vmstat "$INTERVAL" "$SAMPLES"; fi
section "iostat ${INTERVAL}s x ${SAMPLES}"
if have iostat; then iostat -xz "$INTERVAL" "$SAMPLES"; fi
section "mpstat"
if have mpstat; then mpstat -P ALL "$INTERVAL" 1; fi
section "top processes by cpu"
if have ps; then ps -eo pid,user,pcpu,pmem,rss,comm --sort=-pcpu 2>/dev/null | head -n "$((TOP + 1))"; fi
section "top processes by memory"
if have ps; then ps -eo pid,user,pcpu,pmem,rss,comm --sort=-rss 2>/dev/null | head -n "$((TOP + 1))"; fi
exit 0
