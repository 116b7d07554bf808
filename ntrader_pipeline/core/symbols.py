"""The one grammar a symbol must follow, wherever it comes from (CLI, run config, file names, settings).

A symbol becomes a Dagster partition key, a catalog folder, a lock-file name and a NautilusTrader
instrument id, so anything beyond what a US ticker needs is refused before it reaches any of them:
``AAPL``, ``BRK.B`` and ``BF-B`` pass (lower case is upper-cased); ``A;DROP TABLE``, ``../x``,
``A,B``, ``A|B``, spaces, newlines and the empty string do not.

Forms that carry more than a symbol (an exchange after ``:``, a list after ``,``) are split by
their callers first; ``parse_symbol`` judges one bare symbol.
"""

from __future__ import annotations

import re

_SYMBOL = re.compile(r"[A-Z][A-Z0-9]{0,9}(?:[.\-][A-Z0-9]{1,5}){0,2}")
SYMBOL_RULE = (
    "a symbol is 1 to 10 ASCII letters or digits starting with a letter, then at most two "
    "'.' or '-' suffixes of 1 to 5 letters or digits (AAPL, BRK.B, BF-B)"
)


class SymbolError(ValueError):
    """Text that is not a symbol; the message quotes it and states the rule."""


def parse_symbol(text: str) -> str:
    """``text`` upper-cased when it is a symbol; otherwise ``SymbolError`` naming the rule."""
    if not isinstance(text, str):
        raise SymbolError(f"{text!r} is not a symbol: {SYMBOL_RULE}")
    symbol = text.upper() if text.isascii() else ""  # no Unicode case folding (ß would become SS)
    if not _SYMBOL.fullmatch(symbol):
        shown = repr(text) if text else "an empty string"
        raise SymbolError(f"{shown} is not a symbol: {SYMBOL_RULE}")
    return symbol


def is_symbol(text: str) -> bool:
    try:
        parse_symbol(text)
    except SymbolError:
        return False
    return True


def parse_symbols(texts) -> list[str]:
    """Each of ``texts`` as a symbol (order kept, duplicates dropped); the first bad one raises."""
    return list(dict.fromkeys(parse_symbol(t) for t in texts))


_EXCHANGE = re.compile(r"[A-Z][A-Z0-9.]{0,15}")


def parse_listing(text: str) -> tuple[str, str]:
    """``SYMBOL`` or ``SYMBOL:EXCHANGE`` (IB's primary exchange, e.g. ``ABC:NYSE``) as (symbol, exchange).

    Only the symbol names the stored series; the exchange says which listing IB should answer for.
    """
    symbol_text, colon, exchange = str(text).strip().partition(":")
    symbol = parse_symbol(symbol_text)
    exchange = exchange.upper() if exchange.isascii() else ""
    if colon and not _EXCHANGE.fullmatch(exchange):
        raise SymbolError(f"{text!r}: write SYMBOL or SYMBOL:EXCHANGE, the exchange in letters (e.g. ABC:NYSE)")
    return symbol, exchange


def parse_listings(texts) -> list[str]:
    """Each of ``texts`` as ``SYMBOL`` or ``SYMBOL:EXCHANGE`` text (order kept, duplicates dropped)."""
    listings = (parse_listing(t) for t in texts)
    return list(dict.fromkeys(f"{s}:{e}" if e else s for s, e in listings))
