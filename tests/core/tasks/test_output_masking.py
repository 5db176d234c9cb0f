"""Masking: whatever a node prints, in whatever pieces, no secret or common encoding of it gets
through, and streaming masks exactly as masking the whole text would."""

from __future__ import annotations

import base64
import urllib.parse

from hypothesis import given, settings
from hypothesis import strategies as st

from knm.core.tasks.output import MASK, Masker, StreamBuffer

BIG = 1 << 30


def streamed(masker: Masker, pieces: list[str]) -> str:
    buffer = StreamBuffer(BIG, masker)
    out = [buffer.feed(piece) for piece in pieces]
    out.append(buffer.feed("", final=True))
    return "".join(out)


def test_a_secret_printed_without_a_newline_is_masked_when_the_stream_ends() -> None:
    masker = Masker(["hunter2-very-secret"])
    assert streamed(masker, ["password: hunter2-very-secret"]) == "password: " + MASK


def test_a_secret_split_over_many_pieces_is_masked() -> None:
    secret = "s3cr3t-value"
    pieces = ["x", *secret, "y"]
    assert streamed(Masker([secret]), pieces) == f"x{MASK}y"


def test_secrets_that_overlap_are_masked_over_their_whole_span() -> None:
    masker = Masker(["abcdef", "defghi"])
    assert masker("..abcdefghi..") == f"..{MASK}.."
    assert "ghi" not in masker("abcdefghi")


def test_base64_of_a_secret_is_masked_at_every_offset_and_with_a_trailing_newline() -> None:
    secret = "correct horse battery"
    masker = Masker([secret])
    for prefix in ("", "a", "ab", "abc"):
        for tail in ("", "\n"):
            encoded = base64.b64encode((prefix + secret + tail).encode()).decode()
            masked = masker(f"out: {encoded} end")
            core = base64.b64encode(secret.encode()[3:-3]).decode()[4:-4]
            assert core not in masked, (prefix, tail, masked)
            assert MASK in masked
    assert masker(base64.b64encode(secret.encode()).decode()) == MASK
    assert masker(base64.b64encode((secret + "\n").encode()).decode()) == MASK


def test_a_long_secret_piped_through_base64_is_masked_across_its_wrapped_lines() -> None:
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    wrapped = base64.encodebytes(key.encode()).decode()
    assert wrapped.count("\n") > 2
    assert streamed(Masker([key]), [wrapped[:100], wrapped[100:]]) == MASK + "\n"


def test_hex_and_url_encodings_of_a_secret_are_masked() -> None:
    secret = "p@ss word/with&stuff"
    masker = Masker([secret])
    for text in (
        secret.encode().hex(),
        secret.encode().hex().upper(),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
    ):
        assert masker(f"[{text}]") == f"[{MASK}]", text


_texts = st.text(alphabet="abc\n*", max_size=60)
_secrets = st.lists(st.text(alphabet="abc\n", min_size=1, max_size=8), max_size=4)


@settings(max_examples=400, deadline=None)
@given(text=_texts, secrets=_secrets, cuts=st.lists(st.integers(0, 60), max_size=12),
       newline=st.booleans())  # fmt: skip
def test_streaming_masks_exactly_as_masking_the_whole_text(
    text: str, secrets: list[str], cuts: list[int], newline: bool
) -> None:
    if newline:
        text += "\n"
    masker = Masker(secrets)
    points = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert streamed(masker, pieces) == masker(text)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), text=st.text(max_size=200), newline=st.booleans())
def test_streaming_masks_any_text_as_masking_it_whole(
    data: st.DataObject, text: str, newline: bool
) -> None:
    if newline:
        text += "\n"
    # Secrets cut from the text itself, so they occur, overlap and nest.
    bounds = st.tuples(st.integers(0, len(text)), st.integers(0, len(text)))
    secrets = [text[min(a, b) : max(a, b)] for a, b in data.draw(st.lists(bounds, max_size=4))]
    masker = Masker(secrets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=20)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert streamed(masker, pieces) == masker(text)


@settings(max_examples=300, deadline=None)
@given(text=_texts, secrets=_secrets)
def test_no_secret_or_encoding_of_one_survives_masking(text: str, secrets: list[str]) -> None:
    masker = Masker(secrets)
    encoded = [base64.b64encode(s.encode()).decode() for s in secrets]
    masked = masker(text + "|" + "|".join(encoded))
    # The mask is made of "*", which no secret here holds: one left would be one missed.
    assert not [s for s in masker.secrets if s in masked]
