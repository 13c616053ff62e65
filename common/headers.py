"""Request headers read from the WSGI environ only when asked for."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from django.http.request import HttpHeaders


class EnvironHeaders(Mapping[str, str]):
    """A case-insensitive view of a request's headers, like `request.headers`, that reads the
    environ key of each header looked up instead of converting them all first.

    For the webhook, which reads one or two headers on its hot path: `request.headers` builds
    its mapping from every environ entry on first use. Iterating still builds it, once.
    """

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self._environ = environ
        self._all: HttpHeaders | None = None

    def _headers(self) -> HttpHeaders:
        if self._all is None:
            self._all = HttpHeaders(self._environ)
        return self._all

    def __getitem__(self, key: str) -> str:
        name = HttpHeaders.to_wsgi_name(key)
        if name in HttpHeaders.UNPREFIXED_HEADERS and HttpHeaders.HTTP_PREFIX + name in self._environ:
            # Content-Type/-Length also sent as HTTP_CONTENT_*: answer as request.headers does.
            return self._headers()[key]
        value = self._environ.get(name)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except (KeyError, TypeError, AttributeError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers())

    def __len__(self) -> int:
        return len(self._headers())
