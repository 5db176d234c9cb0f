#!/usr/bin/env bash
# Is TCP port PORT open on HOST (default: this node)? Exit 0 when open, 1 when not.
set -u
host=${HOST:-127.0.0.1}
if command -v ss >/dev/null 2>&1; then
  listeners=$(ss -Htln "sport = :${PORT}" 2>/dev/null | wc -l)
  echo "local listeners on port ${PORT}: ${listeners}"
fi
if timeout "$TIMEOUT" bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$PORT" 2>/dev/null; then
  echo "open: ${host}:${PORT} accepts connections"
  exit 0
fi
echo "closed: ${host}:${PORT} does not accept connections (within ${TIMEOUT} s)"
exit 1
