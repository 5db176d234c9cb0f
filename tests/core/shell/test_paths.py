"""The paths a node cannot lose (``knm.core.shell.paths``); the guard-rail's tests check the
verdicts built on them."""

from __future__ import annotations

import pytest

from knm.core.shell.paths import (
    block_device,
    critical_dir,
    critical_file,
    landing,
    probes,
    replaceable,
)
from knm.core.shell.values import U, Word


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/", "/"),
        ("/etc/kubernetes", "/etc/kubernetes"),
        ("/usr/bin/*", "/usr/bin/*"),
        ("/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"),  # holds the C library
        ("/var/lib/etcd/member", "/var/lib/etcd"),  # inside etcd's data
    ],
)
def test_a_critical_directory_is_named_however_it_is_reached(path: str, named: str) -> None:
    assert critical_dir(path) == named


@pytest.mark.parametrize("path", ["/tmp/x", "/var/lib/cni", "/etc/cni/net.d", "/home/a/b"])
def test_directories_a_clean_up_may_remove_are_not_critical(path: str) -> None:
    assert critical_dir(path) is None


def test_a_file_inside_a_critical_tree_is_critical_and_may_be_restored_whole() -> None:
    assert critical_file("/var/lib/etcd/member/snap/db") == "/var/lib/etcd/*"
    assert replaceable("/var/lib/etcd/member/snap/db")


def test_a_listed_file_is_critical_and_only_configs_may_be_replaced_whole() -> None:
    assert critical_file("/etc/passwd") == "/etc/passwd"
    assert not replaceable("/etc/passwd")
    assert replaceable("/etc/fstab")


@pytest.mark.parametrize("path", ["/dev/sda", "/dev/nvme0n1p1", "/dev/sd[b]", "/dev/vdb?"])
def test_a_block_device_is_known_by_its_name_or_a_glob_naming_one(path: str) -> None:
    assert block_device(path)


@pytest.mark.parametrize("path", ["/dev/null", "/dev/shm/x", "/tmp/sda", "/dev/pts/0"])
def test_other_paths_are_no_block_devices(path: str) -> None:
    assert not block_device(path)


def test_an_unknown_part_is_probed_as_empty_as_the_root_and_as_any_name() -> None:
    assert set(probes(Word((f"/dev/{U}",), "/dev/$X"), "/root")) >= {"/dev", "/dev/*"}
    assert "/" in probes(Word((f"{U}/",), "$D/"), "/root")


def test_a_copy_into_a_directory_lands_under_its_own_name() -> None:
    landed = landing(Word.plain("/etc/"), Word.plain("backup/passwd"))
    assert landed is not None and landed.value == "/etc/passwd"
