"""SMS encoding as a phone network counts it: GSM-7 (3GPP TS 23.038 default alphabet) or UCS-2.

GSM-7: 160 septets in one message, 153 per part once it is concatenated (the user data header takes 7).
Characters of the extension table are sent as ESC + char and count two; the pair is never split across parts.
UCS-2: 70 UTF-16 code units in one message, 67 per part; a surrogate pair is never split either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# The basic table, in code-point order 0x00..0x7F (0x1B, the escape to the extension table, left out).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# Reached through the escape: each one costs two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE_LIMITS = {GSM7: 160, UCS2: 70}
PART_LIMITS = {GSM7: 153, UCS2: 67}

# Characters that force UCS-2 although a GSM-7 character reads the same. Typed by word processors and phones
# without anyone noticing, they halve what fits in a message.
LOOKALIKES: dict[str, str] = {
    "\u2018": "'",  # left single quotation mark
    "\u2019": "'",  # right single quotation mark / typographic apostrophe
    "\u201a": "'",  # single low-9 quotation mark
    "\u201b": "'",
    "\u2032": "'",  # prime
    "\u00b4": "'",  # acute accent
    "\u0060": "'",  # grave accent (backtick) is not in GSM-7
    "\u201c": '"',  # left double quotation mark
    "\u201d": '"',  # right double quotation mark
    "\u201e": '"',  # double low-9 quotation mark
    "\u00ab": '"',  # «
    "\u00bb": '"',  # »
    "\u2033": '"',  # double prime
    "\u00a0": " ",  # no-break space
    "\u202f": " ",  # narrow no-break space (French typography before : ; ! ?)
    "\u2007": " ",  # figure space
    "\u2009": " ",  # thin space
    "\u2002": " ",  # en space
    "\u2003": " ",  # em space
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2212": "-",  # minus sign
    "\u2026": "...",  # horizontal ellipsis
    "\u00ad": "",  # soft hyphen (invisible)
    "\u200b": "",  # zero-width space (invisible)
    "\ufeff": "",  # byte order mark / zero-width no-break space (invisible)
}


@dataclass(frozen=True)
class SmsInfo:
    """What a network makes of a text.

    `length` is in septets for GSM-7 (extension characters count two) and in UTF-16 code units for UCS-2.
    `ucs2_forcing` lists, in order of first appearance, every character outside GSM-7; `replaceable` is the
    subset with a GSM-7 look-alike (see LOOKALIKES), which replace_lookalikes() would fix.
    """

    encoding: str
    length: int
    segments: int
    ucs2_forcing: list[str] = field(default_factory=list)
    replaceable: list[str] = field(default_factory=list)


def is_gsm7_char(char: str) -> bool:
    return char in GSM7_BASIC or char in GSM7_EXTENSION


def _unit_costs(text: str, encoding: str) -> list[int]:
    """The cost of each unsplittable unit of `text`: a character (1, or 2 for an escape pair or a surrogate pair)."""
    if encoding == GSM7:
        return [2 if char in GSM7_EXTENSION else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def _count_segments(costs: list[int], encoding: str) -> int:
    total = sum(costs)
    if total == 0:
        return 0
    if total <= SINGLE_LIMITS[encoding]:
        return 1
    part_limit = PART_LIMITS[encoding]
    parts, used = 1, 0
    for cost in costs:
        if used + cost > part_limit:  # a pair that does not fit whole moves to the next part
            parts, used = parts + 1, 0
        used += cost
    return parts


# Every character GSM-7 can carry (one character class: a C-speed scan of a whole message).
_ALL_GSM7 = re.compile("[" + "".join(re.escape(char) for char in sorted(GSM7_BASIC | GSM7_EXTENSION)) + "]*")


def analyse(text: str) -> SmsInfo:
    if _ALL_GSM7.fullmatch(text):  # the common case, without a Python step per character
        length = len(text) + sum(map(text.count, GSM7_EXTENSION))
        if length <= SINGLE_LIMITS[GSM7]:
            return SmsInfo(encoding=GSM7, length=length, segments=1 if length else 0)
    forcing = list(dict.fromkeys(char for char in text if not is_gsm7_char(char)))
    encoding = UCS2 if forcing else GSM7
    costs = _unit_costs(text, encoding)
    return SmsInfo(
        encoding=encoding,
        length=sum(costs),
        segments=_count_segments(costs, encoding),
        ucs2_forcing=forcing,
        replaceable=[char for char in forcing if char in LOOKALIKES],
    )


def replace_lookalikes(text: str) -> str:
    """`text` with each UCS-2 look-alike (curly quotes, no-break spaces, dashes, ...) replaced by its GSM-7 twin."""
    return "".join(LOOKALIKES.get(char, char) for char in text)


def describe_char(char: str) -> str:
    """A readable name for a character in an admin message: invisible ones would otherwise show as nothing."""
    return f"U+{ord(char):04X}" if not char.isprintable() or char.isspace() else f"{char} (U+{ord(char):04X})"
