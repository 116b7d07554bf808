"""How messages quote what came from outside: a short, printable excerpt, never a whole line.

A message about a file goes to a terminal, a log file, the Dagster event log and the UI. Whatever
the file holds (an environment block, a private key, a 100 KB line, escape sequences that move a
terminal's cursor) must not travel with it: a message names the file, the line, the column and the
rule, and quotes at most ``EXCERPT_CHARS`` characters of one cell, with every control or other
non-printable character written as an escape (``\\x00``, ``\\n``, ``\\u202e``).

Every function here is idempotent (applying it twice gives the same text), so a value may pass
through more than one layer that quotes it.
"""

from __future__ import annotations

import re

EXCERPT_CHARS = 32  # a timestamp with fractions and an offset fits; a secret's line does not
MESSAGE_CHARS = 300  # a reason built around an excerpt: our own rules are far shorter
ELLIPSIS = "…"


def _escaped(char: str) -> str:
    return char if char.isprintable() else repr(char)[1:-1]


def printable(text: object) -> str:
    """``text`` with every non-printable character (newline, NUL, ESC, bidi controls...) escaped."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(_escaped(c) for c in text)


def excerpt(text: object, limit: int = EXCERPT_CHARS) -> str:
    """At most ``limit`` printable characters of ``text`` (unquoted); a cut ends in ``…``."""
    text = printable(text) if len(str(text)) <= limit else str(text)
    if len(text) <= limit and text.isprintable():
        return text
    pieces, size = [], 0
    for char in text:
        piece = _escaped(char)
        if size + len(piece) > limit - 1:
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces) + ELLIPSIS


def shown_path(path: object) -> str:
    """A file name as messages print it: whole, but on one line and without control characters."""
    return printable(path)


# A quoted run inside a reason: '...', "..." or `...` (what pydantic, msgspec and our rules quote).
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")


def clipped(reason: object, limit: int = MESSAGE_CHARS) -> str:
    """A reason made safe to print: printable, every quoted value cut to an excerpt, at most ``limit``
    characters. For texts from other libraries (or other modules) that may quote input."""
    text = printable(reason)
    text = _QUOTED.sub(lambda m: m[0] if len(m[0]) <= EXCERPT_CHARS + 2 else _requote(m[0]), text)
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def _requote(quoted: str) -> str:
    mark = quoted[0]
    return f"{mark}{excerpt(quoted[1:-1])}{mark}"
