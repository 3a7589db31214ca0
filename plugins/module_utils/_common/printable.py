# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Results that ansible can carry: bytes that are not UTF-8 shown as ``\\xNN`` escapes.

File names and environment values are bytes. Python reads them as text with lone surrogates
standing for the bytes that are not UTF-8 (``surrogateescape``); ansible refuses such text in a
module's result ("Refusing to deserialize an invalid UTF8 string value") and fails the task.
A path like ``caf\\xe9.bin`` is therefore reported with a visible escape, while the module
itself always works on the exact bytes.
"""

from __future__ import annotations


def escape_text(text):
    """`text` with each byte that is not UTF-8 (a lone surrogate) written as ``\\xNN``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that does not stand for a byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def printable(value):
    """`value` (nested dicts, lists, tuples, strings) with every string escaped by escape_text."""
    if isinstance(value, str):
        return escape_text(value)
    if isinstance(value, dict):
        return dict((printable(key), printable(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [printable(item) for item in value]
    return value
