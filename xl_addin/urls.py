"""The service's base URL, checked as the HTTP library will use it.

A check that reads a URL one way while the connection reads it another is no check:
``http://10.0.0.1\\@127.0.0.1:18001/api`` is loopback to :mod:`urllib.parse` (host after
the ``@``) and 10.0.0.1 to urllib3 (the backslash ends the host), so the token went to
10.0.0.1 in plain text. Here the URL is prepared and parsed once by requests and
urllib3 themselves, the host checked is the host they connect to, and anything a
reader could take two ways is refused: backslashes, user names or passwords,
whitespace or control characters, a query or a fragment, parsers that disagree.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .exceptions import ConfigError, InsecureURLError

SETTING = "LIXINGER_BASE_URL"


def is_loopback_host(host: str | None) -> bool:
    """True for this machine only: ``localhost`` or a loopback address."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(url: str) -> str:
    """The host a request to *url* connects to, as urllib3 parses it (brackets kept off)."""
    from urllib3.util import parse_url

    return (parse_url(url).host or "").strip("[]")


def _refuse(url: str, why: str, show: bool = True) -> ConfigError:
    from .messages import shown

    if not show:  # it may hold a password
        return ConfigError(f"{SETTING} {why}")
    return ConfigError(f"{SETTING}={shown(url, limit=120)!r} {why}")


def check_base_url(url: str) -> str:
    """The base URL without a trailing slash; plain http only for loopback.

    Raises ConfigError (InsecureURLError for plain http elsewhere) with one line that
    says what is wrong.
    """
    import requests
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    text = (url or "").strip()
    if not text:
        raise _refuse(url, "is empty; leave it unset for the real service")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise _refuse(url, "contains a space or a control character")
    if "\\" in text:
        raise _refuse(url, "contains a backslash; URLs use / only")
    try:
        parts = parse_url(text)
        prepared = requests.Request("POST", text).prepare().url
        used = parse_url(prepared)
    except (LocationParseError, requests.exceptions.RequestException, ValueError):
        raise _refuse(url, "is not an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not used.host:
        raise _refuse(url, "is not an http(s) URL")
    if parts.auth is not None or "@" in (urlsplit(text).netloc or ""):
        raise _refuse(url, "holds a user name or password (an '@'); the token is kept in the keyring, not in the URL",
                      show=False)
    if parts.query is not None or parts.fragment is not None:
        raise _refuse(url, "has a '?' or '#' part; give the API's base, e.g. https://open.lixinger.com/api")
    host = (used.host or "").strip("[]")
    try:
        other = urlsplit(text).hostname or ""
    except ValueError:
        other = ""
    if host.lower() != other.strip("[]").lower():
        raise _refuse(url, "can be read as two different hosts")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise InsecureURLError(
            f"refusing plain http:// to {host}: the token would travel unencrypted; "
            "use https:// (plain http is only allowed for this machine, e.g. the sandbox)"
        )
    return text.rstrip("/")
