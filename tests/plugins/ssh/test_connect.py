"""The transport's algorithm choice: the cheap strong ciphers first, nothing weak offered."""

from __future__ import annotations

from asyncssh.kex import get_default_kex_algs

from knm.plugins.ssh.connect import ENCRYPTION_ALGS, KEX_ALGS


def test_the_key_exchange_keeps_asyncssh_order_with_the_post_quantum_hybrid_first() -> None:
    defaults = [alg.decode() for alg in get_default_kex_algs() if not alg.startswith(b"gss-")]
    assert [alg for alg in defaults if not alg.endswith("-sha1")] == KEX_ALGS
    assert KEX_ALGS[0].startswith("mlkem768x25519")


def test_no_sha1_key_exchange_and_no_gss_are_offered() -> None:
    assert not [alg for alg in KEX_ALGS if alg.endswith("-sha1") or alg.startswith("gss-")]


def test_the_ciphers_are_aead_first_and_never_cbc_or_rc4() -> None:
    assert ENCRYPTION_ALGS[0] == "aes256-gcm@openssh.com"
    assert not [alg for alg in ENCRYPTION_ALGS if "cbc" in alg or "arcfour" in alg]
