"""The proxy a corporate network makes us use: ``LIXINGER_PROXY``, checked and kept secret.

requests already honours ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` from the environment;
Excel, started from the Start menu, often has none of them, and a proxy for Lixinger only
should not have to be everyone's. ``LIXINGER_PROXY`` (or ``proxy`` in settings.toml) names
one proxy for every request to the service, on top of the environment's: ``http://``,
``https://`` (TLS to the proxy) or ``socks5://``/``socks5h://`` (needs the ``socks`` extra,
``pip install 'xl-addin[socks]'``, which is requests' own ``requests[socks]``). It applies
to the sandbox on this machine too: the user asked for it by name.

A proxy URL may carry a user and password (``http://me:secret@proxy:8080``): they are
shown as ``***`` in every repr, message and ``config show`` line, as the token is.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from .exceptions import ConfigError

SCHEMES = ("http", "https", "socks5", "socks5h")


class ProxyURL:
    """A proxy URL that shows itself without its credentials: ``str()``/``repr()`` say
    ``http://***@proxy:8080``; :meth:`reveal` gives the URL requests needs."""

    __slots__ = ("_url",)

    def __init__(self, url: str):
        self._url = url

    def reveal(self) -> str:
        return self._url

    def __str__(self) -> str:
        return redact_proxy(self._url)

    def __repr__(self) -> str:
        return f"ProxyURL({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ProxyURL) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


def check_proxy(text: str) -> ProxyURL:
    """*text* as a proxy URL, or a ConfigError that says what is allowed (credentials not shown)."""
    text = text.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigError(f"proxy {redact_proxy(text)!r} is not a URL; expected e.g. http://proxy.corp:8080") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigError(f"proxy {redact_proxy(text)!r}: the scheme must be one of "
                          f"{', '.join(s + '://' for s in SCHEMES)}; e.g. http://proxy.corp:8080")
    if not parts.hostname:
        raise ConfigError(f"proxy {redact_proxy(text)!r} names no host; expected e.g. http://proxy.corp:8080")
    if parts.scheme.lower().startswith("socks"):
        try:
            import socks  # noqa: F401  (PySocks, from requests[socks])
        except ImportError:
            raise ConfigError(
                f"proxy {redact_proxy(text)!r} is a SOCKS proxy, which needs PySocks: "
                "pip install 'xl-addin[socks]' (or 'requests[socks]')"
            ) from None
    del port
    return ProxyURL(text)


def redact_proxy(url: object) -> str:
    """The proxy URL with its password (and user) shown as ``***``."""
    text = url.reveal() if isinstance(url, ProxyURL) else str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return text.split("@")[-1] if "@" in text else text
    if "@" not in parts.netloc:
        return text
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def secrets_of(url: "ProxyURL | str | None") -> list[str]:
    """The user and password in a proxy URL (decoded and as written), to strip from any text shown."""
    if not url:
        return []
    url = url.reveal() if isinstance(url, ProxyURL) else url
    from urllib.parse import unquote

    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = []
    for value in (parts.username, parts.password):
        if value:
            found += [value, unquote(value)]
    return [s for s in dict.fromkeys(found) if len(s) >= 3]


def proxies_for(url: "ProxyURL | str | None") -> dict[str, str]:
    """requests' ``proxies`` mapping: the one proxy for both schemes (empty: none of ours)."""
    if not url:
        return {}
    url = url.reveal() if isinstance(url, ProxyURL) else url
    return {"http": url, "https": url}
