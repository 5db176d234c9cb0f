#!/usr/bin/env bash
# Collect logs into a tarball on the node and print its path. Only readable files are taken:
# unreadable ones are skipped with a warning, never a failure.
set -u
umask 077
if [ ! -d "$LOG_DIR" ]; then echo "error: ${LOG_DIR} is not a directory" >&2; exit 2; fi
if [ ! -d "$OUTPUT_DIR" ] || [ ! -w "$OUTPUT_DIR" ]; then echo "error: cannot write to ${OUTPUT_DIR}" >&2; exit 2; fi
host=$(hostname 2>/dev/null || echo node)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
tarball="${OUTPUT_DIR%/}/knm-logs-${host}-${stamp}-$$.tar.gz"
list=$(mktemp "${OUTPUT_DIR%/}/.knm-logs-XXXXXX")
trap 'rm -f -- "$list"' EXIT
find "$LOG_DIR" -xdev -type f -mtime -"$MAX_AGE_DAYS" -readable -print 2>/dev/null >"$list"
unreadable=$(find "$LOG_DIR" -xdev \( -type f -o -type d \) ! -readable -print 2>/dev/null | wc -l)
if [ "$unreadable" -gt 0 ]; then
  echo "warning: skipped ${unreadable} unreadable files or directories under ${LOG_DIR}" >&2
fi
tar --ignore-failed-read --warning=no-file-changed -czf "$tarball" -T "$list" 2>/dev/null
rc=$?
if [ "$rc" -gt 1 ]; then echo "error: tar failed with exit code ${rc}" >&2; exit "$rc"; fi
echo "files: $(wc -l <"$list")"
echo "size: $(du -h "$tarball" | cut -f1)"
echo "tarball: ${tarball}"
exit 0
