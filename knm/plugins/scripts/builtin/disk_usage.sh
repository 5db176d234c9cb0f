#!/usr/bin/env bash
# Disk usage report: read-only. Filesystems, inodes, and the largest directories under TARGET.
set -u
echo "== filesystems =="
df -hP 2>/dev/null
echo
echo "== inodes =="
df -iP 2>/dev/null
echo
echo "== largest entries under ${TARGET} (top ${TOP}) =="
if [ ! -d "$TARGET" ]; then
  echo "error: ${TARGET} is not a directory" >&2
  exit 2
fi
# One filesystem only; unreadable directories are skipped (counted on stderr), never fatal.
errors=$(mktemp)
trap 'rm -f -- "$errors"' EXIT
timeout "$DU_TIMEOUT" du -xh --max-depth="$DEPTH" -- "$TARGET" 2>"$errors" | sort -rh | head -n "$TOP"
denied=$(grep -c 'Permission denied' "$errors" || true)
if [ "${denied:-0}" -gt 0 ]; then
  echo "note: ${denied} entries could not be read (permission denied) and are not counted" >&2
fi
exit 0
