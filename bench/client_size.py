"""What the client-only install (``pip install ./client``) adds to a fresh venv, by distribution,
beside issue #21's budget of 30 MB (pip and setuptools, the fresh venv's own, not counted).

It copies the checkout (a build writes beside the sources), makes a venv from this Python,
installs the client into it, and prints each installed distribution's files on disk (the files
its RECORD names, bytecode included) and the venv's growth, all in MB of disk blocks. The
figures tell what each dependency costs: what earns its place.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MB = 30.0


def disk_usage(paths: list[Path]) -> int:
    """Bytes of disk blocks under ``paths``, each file once (hard links too)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top in paths:
        for item in [top, *top.rglob("*")] if top.is_dir() else [top]:
            stat = item.lstat()
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_blocks * 512
    return total


def by_distribution(venv: Path) -> dict[str, int]:
    sizes = {}
    for record in venv.glob("lib/python*/site-packages/*.dist-info/RECORD"):
        site = record.parent.parent
        with record.open(newline="") as rows:
            files = [(site / row[0]).resolve() for row in csv.reader(rows) if row]
        name = " ".join(record.parent.name.removesuffix(".dist-info").split("-", 1))
        sizes[name] = disk_usage([path for path in files if path.exists()])
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the same measurement (it is one)")
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="knm-client-size-") as tmp:
        source = Path(tmp) / "knm"
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
            ".git", "build", "*.egg-info", "__pycache__", "tests", "bench"))  # fmt: skip
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        fresh = disk_usage([venv])
        before = by_distribution(venv)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
             str(source / "client")],
            check=True, timeout=600,
        )  # fmt: skip
        grown = disk_usage([venv]) - fresh
        added = {name: size for name, size in by_distribution(venv).items() if name not in before}
    print("| distribution | MB on disk |")
    print("|---|---:|")
    for name, size in sorted(added.items(), key=lambda item: -item[1]):
        print(f"| {name} | {size / 1e6:.1f} |")
    print(f"| **the venv grew by** | **{grown / 1e6:.1f}** (budget ≤ {BUDGET_MB:.0f}) |")
    return 0 if grown / 1e6 <= BUDGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
