from __future__ import annotations

import pytest

from notifier import sms
from notifier.sms import GSM7, UCS2, analyse, replace_lookalikes


@pytest.mark.parametrize(
    ("length", "segments"),
    [(0, 0), (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_it_counts_gsm7_segments_on_boundary_lengths(length: int, segments: int) -> None:
    info = analyse("a" * length)
    assert info.encoding == GSM7
    assert info.length == length
    assert info.segments == segments


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3)],
)
def test_it_counts_ucs2_segments_on_boundary_lengths(length: int, segments: int) -> None:
    info = analyse("ж" * length)
    assert info.encoding == UCS2
    assert info.length == length
    assert info.segments == segments


def test_it_counts_extension_characters_double() -> None:
    info = analyse("€" * 80)
    assert info.encoding == GSM7
    assert info.length == 160
    assert info.segments == 1
    assert analyse("€" * 80 + "a").segments == 2
    assert analyse("{}[]~|^\\\f").length == 18


def test_it_never_splits_an_escape_pair_across_parts() -> None:
    # 152 plain septets then "€" (2 septets): 154 in total for part one would split the pair, so it moves.
    text = "a" * 152 + "€" + "b" * 152
    info = analyse(text)
    assert info.length == 306  # would fit 2 x 153 exactly if the pair could be split
    assert info.segments == 3
    # The same length without the pair straddling the boundary fits two parts.
    assert analyse("a" * 151 + "€" + "b" * 153).segments == 2


def test_it_never_splits_a_surrogate_pair_across_ucs2_parts() -> None:
    text = "ж" * 66 + "😀" + "ж" * 66  # the emoji is two UTF-16 units at positions 67-68
    info = analyse(text)
    assert info.encoding == UCS2
    assert info.length == 134
    assert info.segments == 3
    assert analyse("ж" * 65 + "😀" + "ж" * 67).segments == 2


def test_it_keeps_french_accents_of_the_basic_table_in_gsm7() -> None:
    assert analyse("é è à ù ì ò Ç É Ñ ß ¿ ¡ Ø Å Æ Ü ö £ ¥ § Δ Ω").encoding == GSM7
    for char in "çêâôîûëïœ":
        assert analyse(f"Voil{char}").encoding == UCS2, char


@pytest.mark.parametrize(
    ("char", "twin"),
    [("\u2019", "'"), ("\u201c", '"'), ("\u201d", '"'), ("\u00a0", " "), ("\u2013", "-"), ("\u2026", "...")],
)
def test_it_reports_lookalikes_that_force_ucs2(char: str, twin: str) -> None:
    info = analyse(f"Your policy{char}s date")
    assert info.encoding == UCS2
    assert info.ucs2_forcing == [char]
    assert info.replaceable == [char]
    fixed = replace_lookalikes(f"Your policy{char}s date")
    assert fixed == f"Your policy{twin}s date"
    assert analyse(fixed).encoding == GSM7


def test_it_reports_each_forcing_character_once_in_order_and_only_lookalikes_as_replaceable() -> None:
    info = analyse("ç\u2019 ç\u2019 ж")
    assert info.ucs2_forcing == ["ç", "\u2019", "ж"]
    assert info.replaceable == ["\u2019"]
    assert analyse(replace_lookalikes("ç\u2019")).encoding == UCS2  # ç has no twin: still UCS-2


def test_it_names_invisible_characters_readably() -> None:
    assert sms.describe_char("\u00a0") == "U+00A0"
    assert sms.describe_char("\u2019") == "\u2019 (U+2019)"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a",
        "Habari Asha, bima yako CHF01 itaisha 28/11/2026.",
        "x" * 160,
        "x" * 159 + "€",  # 161 septets: the extension character counts two
        "x" * 158 + "€",  # 160 septets exactly
        "[" * 80,
        "{}" * 40 + "~",
        "é" * 160 + "\n\r@£$¥",
        "Habari \u2019Asha\u2019",  # a look-alike: UCS-2
        "x" * 500,
    ],
)
def test_the_quick_gsm7_path_counts_like_the_character_by_character_rule(text: str) -> None:
    forcing = [char for char in text if not sms.is_gsm7_char(char)]
    encoding = UCS2 if forcing else GSM7
    costs = [(2 if char in sms.GSM7_EXTENSION else 1) if encoding == GSM7 else 1 for char in text]
    info = analyse(text)
    assert (info.encoding, info.length, info.segments) == (encoding, sum(costs), sms._count_segments(costs, encoding))
    assert info.ucs2_forcing == list(dict.fromkeys(forcing))
