#!/usr/bin/env bash
# Disk cleanup. DRY_RUN=true (the default) only reports what would be freed.
# It never touches container volumes: only unused container images are pruned.
set -u
run() {
  if [ "$DRY_RUN" = "true" ]; then echo "would run: $*"; else echo "running: $*"; "$@" || echo "warning: $1 failed" >&2; fi
}
if [ "$DRY_RUN" = "true" ]; then echo "dry run: nothing is removed (set DRY_RUN=false to clean)"; fi
echo "before:"; df -hP / /var 2>/dev/null | sort -u

echo; echo "== journal (keep ${JOURNAL_KEEP}) =="
if command -v journalctl >/dev/null 2>&1; then
  journalctl --disk-usage 2>/dev/null || echo "note: journal size unknown (no permission)"
  run journalctl --vacuum-size="$JOURNAL_KEEP"
else
  echo "note: journalctl is not installed; skipped"
fi

echo; echo "== rotated logs older than ${MAX_AGE_DAYS} days in ${LOG_DIR} =="
if [ -d "$LOG_DIR" ]; then
  list=$(find "$LOG_DIR" -xdev -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -mtime +"$MAX_AGE_DAYS" 2>/dev/null)
  if [ -z "$list" ]; then echo "none"; else
    printf '%s\n' "$list" | while IFS= read -r file; do run rm -f -- "$file"; done
  fi
else
  echo "note: ${LOG_DIR} does not exist; skipped"
fi

echo; echo "== package caches =="
if command -v apt-get >/dev/null 2>&1; then run apt-get clean
elif command -v dnf >/dev/null 2>&1; then run dnf clean packages
elif command -v yum >/dev/null 2>&1; then run yum clean packages
else echo "note: no known package manager; skipped"; fi

echo; echo "== unused container images (volumes are never pruned) =="
if command -v crictl >/dev/null 2>&1; then run crictl rmi --prune
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then run docker image prune -f
else echo "note: no container runtime answers; skipped"; fi

echo; echo "after:"; df -hP / /var 2>/dev/null | sort -u
exit 0
