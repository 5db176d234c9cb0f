#!/usr/bin/env bash
# Installs everything the test suite needs, then runs the whole suite.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# OS packages: OpenSSH's server for the SSH test fleet, sudo for its sudo tests, wrk for the
# API benchmark's smoke test.
need=()
command -v /usr/sbin/sshd >/dev/null 2>&1 || need+=(openssh-server)
command -v sudo >/dev/null 2>&1 || need+=(sudo)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
# Ansible's password authentication over ssh.
command -v sshpass >/dev/null 2>&1 || need+=(sshpass)
# The README's first session, which tests/test_readme.py runs as written.
command -v curl >/dev/null 2>&1 || need+=(curl)
# The completion scripts are checked by their own shells (tests/cli/test_completion.py).
command -v zsh >/dev/null 2>&1 || need+=(zsh)
command -v fish >/dev/null 2>&1 || need+=(fish)
# The docs' examples, which tests/test_docs_examples.py runs as written, pipe JSON through jq.
command -v jq >/dev/null 2>&1 || need+=(jq)
# The README's first session makes its webhook secret with openssl rand.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The web console's browser tests (tests/plugins/console): Chromium and its driver, from the OS.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "scripts/test.sh: please install: ${need[*]}" >&2
        exit 1
    fi
fi

# The install tests' non-root user (tests/install): a home of mode 0700, as useradd makes one.
if [ "$(id -u)" = 0 ] && ! id knm-install-test >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash --comment "knm install tests" knm-install-test
    chmod 700 "$(getent passwd knm-install-test | cut -d: -f6)"
fi
# A venv made from the system Python (the install tests): Debian splits venv out.
if [ "$(id -u)" = 0 ] && [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
    apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi

# An install of knm from before the client became a distribution of its own (client/) owns the
# knm command and the client's modules: replacing it after installing the client, pip would
# remove them again. It goes first.
if ! python3 -c 'import importlib.metadata as m, sys
sys.exit(not any(r.startswith("kube-node-manager-client") for r in m.requires("kube-node-manager") or []))' 2>/dev/null; then
    python3 -m pip uninstall --quiet --yes --disable-pip-version-check --root-user-action=ignore \
        kube-node-manager >/dev/null 2>&1 || true
fi
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e ./client -e '.[dev]'
# Deterministic, bounded property tests unless asked otherwise (knm.testing.plugin).
export KNM_HYPOTHESIS_PROFILE="${KNM_HYPOTHESIS_PROFILE:-ci}"

# Tests that spend their time waiting, not on the CPU: the maintenance lab's (the state machine,
# ~25 minutes, and the mutants' replays, ~3, waiting on simulated reboots and leases), and the
# ones that wait on the wall clock for cron times and maintenance windows (~4 minutes). When the
# whole suite runs (no arguments but output options), each lane below (files separated by
# spaces) runs in a pytest of its own beside the rest: every fixture they share with it
# (database, sshd fleet, ports) is made per process. KNM_TEST_SERIAL=1 runs everything in one.
LAB=(
    "tests/plugins/workflows/test_maintenance_machine.py"
    "tests/plugins/workflows/test_maintenance_mutants.py tests/plugins/workflows/test_windows.py
     tests/plugins/workflows/test_windows_kube.py tests/core/schedules/test_exactly_once.py"
)
whole=1
for arg in "$@"; do
    case "$arg" in
        -q | -qq | -v | -vv | -ra | -rA | -x | --durations=*) ;;
        *) whole=0 ;;
    esac
done
if [ "$whole" = 0 ] || [ "${KNM_TEST_SERIAL:-0}" = 1 ]; then
    exec python3 -m pytest "$@"
fi

logs=()
pids=()
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    rm -f "${logs[@]}"
}
trap 'cleanup; exit 130' INT TERM
ignore=()
for lane in "${LAB[@]}"; do
    read -r -d '' -a paths <<<"$lane" || true
    for path in "${paths[@]}"; do ignore+=("--ignore=$path"); done
    log="$(mktemp "${TMPDIR:-/tmp}/knm-lab-tests.XXXXXX")"
    logs+=("$log")
    python3 -m pytest "$@" "${paths[@]}" >"$log" 2>&1 &
    pids+=("$!")
done
status=0
python3 -m pytest "$@" "${ignore[@]}" || status=$?
for i in "${!LAB[@]}"; do
    lab_status=0
    wait "${pids[$i]}" || lab_status=$?
    echo
    read -r -d '' -a paths <<<"${LAB[$i]}" || true
    echo "=== ${paths[*]}, run beside the rest: exit $lab_status ==="
    cat "${logs[$i]}"
    [ "$status" -ne 0 ] || status=$lab_status
done
rm -f "${logs[@]}"
exit "$status"
