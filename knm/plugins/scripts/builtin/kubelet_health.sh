#!/usr/bin/env bash
# Kubelet health. Exit codes: 0 healthy, 1 unhealthy, 3 kubelet is not installed.
set -u
unit_known() {
  command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files kubelet.service 2>/dev/null | grep -q '^kubelet\.service'
}
if ! command -v kubelet >/dev/null 2>&1 && [ ! -x /usr/bin/kubelet ] && ! unit_known; then
  echo "kubelet is not installed on this node"
  exit 3
fi
healthy=0
if command -v kubelet >/dev/null 2>&1; then echo "version: $(kubelet --version 2>/dev/null)"; fi
if command -v systemctl >/dev/null 2>&1; then
  state=$(systemctl is-active kubelet 2>/dev/null)
  echo "service: ${state:-unknown}"
  [ "$state" = "active" ] || healthy=1
fi
url="http://127.0.0.1:${HEALTHZ_PORT}/healthz"
if command -v curl >/dev/null 2>&1; then
  answer=$(curl -fsS --max-time 5 "$url" 2>&1)
elif command -v wget >/dev/null 2>&1; then
  answer=$(wget -qO- -T 5 "$url" 2>&1)
else
  answer="note: neither curl nor wget is installed; healthz not checked"
fi
echo "healthz: ${answer}"
case "$answer" in ok) ;; note:*) ;; *) healthy=1 ;; esac
if [ "$healthy" -eq 0 ]; then echo "kubelet is healthy"; else echo "kubelet is unhealthy"; fi
exit "$healthy"
