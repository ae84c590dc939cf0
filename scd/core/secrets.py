"""Credentials never leave in text: not in an error, a log line, `describe()` or `scd doctor`.

1. A login written into a URI (``bolt://user:pw@host``) is split off when the StoreConfig is made
   (``split_credentials``): the URI scd keeps, prints and hands to the driver has no userinfo.
2. Every password a StoreConfig holds is remembered here; ``scrub`` replaces it (and any userinfo left in a URI)
   with ``***`` in a text. ScdError scrubs its own line, so no message built from a driver's text can carry one.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
_SECRETS: set[str] = set()
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")


def remember(secret: str | None) -> None:
    """Mask ``secret`` in every text ``scrub`` sees from now on (short strings too: a password is a password)."""
    if secret:
        _SECRETS.add(secret)


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """``scheme://user:pw@host…`` -> (``scheme://host…``, user, password); a URI without userinfo unchanged."""
    m = _USERINFO.match(uri)
    if m is None:
        return uri, None, None
    user, sep, password = m.group("userinfo").partition(":")
    clean = m.group("scheme") + uri[m.end() :]
    return clean, unquote(user) or None, unquote(password) if sep else None


def scrub(text: str) -> str:
    """``text`` with every remembered secret and any URI userinfo replaced by ***."""
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    for secret in sorted(_SECRETS, key=len, reverse=True):  # longest first: one secret may contain another
        text = text.replace(secret, MASK)
    return text
