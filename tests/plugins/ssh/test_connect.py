"""The transport's algorithm choice: the cheapest strong ones first, nothing weak offered."""

from __future__ import annotations

from asyncssh.kex import get_default_kex_algs

from knm.plugins.ssh.connect import ENCRYPTION_ALGS, KEX_ALGS


def test_the_key_exchange_prefers_curve25519_and_keeps_every_other_strong_default() -> None:
    assert KEX_ALGS[:2] == ["curve25519-sha256", "curve25519-sha256@libssh.org"]
    assert len(KEX_ALGS) == len(set(KEX_ALGS))
    # A server without curve25519 still negotiates the post-quantum hybrid or the next default.
    defaults = [alg.decode() for alg in get_default_kex_algs() if not alg.startswith(b"gss-")]
    assert set(KEX_ALGS) == {alg for alg in defaults if not alg.endswith("-sha1")}


def test_no_sha1_key_exchange_and_no_gss_are_offered() -> None:
    assert not [alg for alg in KEX_ALGS if alg.endswith("-sha1") or alg.startswith("gss-")]


def test_the_ciphers_are_aead_first_and_never_cbc_or_rc4() -> None:
    assert ENCRYPTION_ALGS[0] == "aes256-gcm@openssh.com"
    assert not [alg for alg in ENCRYPTION_ALGS if "cbc" in alg or "arcfour" in alg]
