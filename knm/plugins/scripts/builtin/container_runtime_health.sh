#!/usr/bin/env bash
# Container runtime health. Exit codes: 0 healthy, 1 unhealthy, 3 no runtime is installed.
# RUNTIME=auto checks containerd, then CRI-O, then Docker (the first one installed).
set -u
installed() {
  case "$1" in
    containerd) command -v containerd >/dev/null 2>&1 || [ -S /run/containerd/containerd.sock ] ;;
    cri-o) command -v crio >/dev/null 2>&1 || [ -S /var/run/crio/crio.sock ] ;;
    docker) command -v dockerd >/dev/null 2>&1 || [ -S /var/run/docker.sock ] ;;
  esac
}
runtime=
if [ "$RUNTIME" = auto ]; then
  for candidate in containerd cri-o docker; do
    if installed "$candidate"; then runtime=$candidate; break; fi
  done
elif installed "$RUNTIME"; then
  runtime=$RUNTIME
fi
if [ -z "$runtime" ]; then
  echo "no container runtime is installed on this node (looked for: ${RUNTIME/auto/containerd, cri-o, docker})"
  exit 3
fi
echo "runtime: ${runtime}"
healthy=0
unit=$runtime; [ "$runtime" = cri-o ] && unit=crio; [ "$runtime" = docker ] && unit=docker
if command -v systemctl >/dev/null 2>&1; then
  state=$(systemctl is-active "$unit" 2>/dev/null)
  echo "service: ${state:-unknown}"
  [ "$state" = "active" ] || healthy=1
fi
case "$runtime" in
  containerd|cri-o)
    if command -v crictl >/dev/null 2>&1; then
      if crictl info >/dev/null 2>&1; then echo "crictl info: ok"; else echo "crictl info: failed"; healthy=1; fi
    elif command -v ctr >/dev/null 2>&1; then
      if ctr version >/dev/null 2>&1; then echo "ctr version: ok"; else echo "ctr version: failed"; healthy=1; fi
    else
      echo "note: neither crictl nor ctr is installed; API not checked"
    fi ;;
  docker)
    if docker info >/dev/null 2>&1; then echo "docker info: ok"; else echo "docker info: failed"; healthy=1; fi ;;
esac
if [ "$healthy" -eq 0 ]; then echo "${runtime} is healthy"; else echo "${runtime} is unhealthy"; fi
exit "$healthy"
