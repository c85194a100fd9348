"""The one place that speaks HTTP (httpx): the bearer token, JSON bodies,
errors, Server-Sent Events; a sync and an asyncio transport over the
same request descriptions (`Call`)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Optional, TypeVar, Union

import httpx

from ._errors import BoxfenceError, error_for

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:4280"
# An exec may run up to the daemon's `[exec] max_timeout` (600 s by default).
TIMEOUT = httpx.Timeout(10.0, read=660.0)
# A flow stream waits for events as long as the caller iterates.
STREAM_TIMEOUT = httpx.Timeout(10.0, read=None)

Verify = Union[bool, str]


def _identity(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request, and what makes the answer's JSON into its result."""

    method: str
    path: str
    body: Any = None
    query: Optional[dict[str, Any]] = None
    convert: Callable[[Any], T] = field(default=_identity)


def _settings(url: Optional[str], token: Optional[str]) -> tuple[str, dict[str, str]]:
    base = (url or os.environ.get("BOXFENCE_URL") or DEFAULT_URL).rstrip("/")
    token = token if token is not None else os.environ.get("BOXFENCE_TOKEN")
    headers = {"accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return base, headers


def _query(query: Optional[dict[str, Any]]) -> dict[str, Any]:
    return {key: value for key, value in (query or {}).items() if value is not None}


def _failure(response: httpx.Response) -> BoxfenceError:
    try:
        body = json.loads(response.content)
    except ValueError:
        # Not the API's JSON error (a proxy's page, say): the status speaks.
        body = None
    return error_for(response.status_code, body, response.headers.get("retry-after"))


def _result(call: Call[T], response: httpx.Response) -> T:
    if not response.is_success:
        raise _failure(response)
    return call.convert(json.loads(response.content) if response.content else None)


def _connection_failed(call: Call[Any], error: Exception) -> BoxfenceError:
    return BoxfenceError(0, "connection_failed", f"{call.method} {call.path}: {error}")


class _Events:
    """Server-Sent Events, fed text as it comes; yields each event's data as JSON."""

    def __init__(self) -> None:
        self._buffer = ""
        self._data: list[str] = []

    def feed(self, text: str) -> Iterator[Any]:
        # Lines are split here: the blank line that ends an event matters.
        self._buffer += text.replace("\r\n", "\n").replace("\r", "\n")
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            if line.startswith("data:"):
                self._data.append(line[5:].removeprefix(" "))
            elif line == "" and self._data:
                data, self._data = "\n".join(self._data), []
                yield json.loads(data)
            # Other fields (`event:`, keep-alive comments) carry nothing we need.


class Transport:
    """Sends requests to one daemon (sync). `verify`: False, or a CA bundle's path, for https URLs."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *, verify: Verify = True) -> None:
        self.url, headers = _settings(url, token)
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT, verify=verify)

    def run(self, call: Call[T]) -> T:
        try:
            response = self._http.request(call.method, call.path, json=call.body, params=_query(call.query))
        except httpx.TransportError as error:
            raise _connection_failed(call, error) from error
        return _result(call, response)

    def events(self, call: Call[Any]) -> Iterator[Any]:
        try:
            with self._http.stream("GET", call.path, params=_query(call.query), timeout=STREAM_TIMEOUT) as response:
                if not response.is_success:
                    response.read()
                    raise _failure(response)
                events = _Events()
                for text in response.iter_text():
                    yield from events.feed(text)
        except httpx.TransportError as error:
            raise _connection_failed(call, error) from error

    def close(self) -> None:
        self._http.close()


class AsyncTransport:
    """Sends requests to one daemon (asyncio)."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *, verify: Verify = True) -> None:
        self.url, headers = _settings(url, token)
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=TIMEOUT, verify=verify)

    async def run(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(call.method, call.path, json=call.body, params=_query(call.query))
        except httpx.TransportError as error:
            raise _connection_failed(call, error) from error
        return _result(call, response)

    async def events(self, call: Call[Any]) -> AsyncIterator[Any]:
        try:
            async with self._http.stream("GET", call.path, params=_query(call.query), timeout=STREAM_TIMEOUT) as response:
                if not response.is_success:
                    await response.aread()
                    raise _failure(response)
                events = _Events()
                async for text in response.aiter_text():
                    for event in events.feed(text):
                        yield event
        except httpx.TransportError as error:
            raise _connection_failed(call, error) from error

    async def aclose(self) -> None:
        await self._http.aclose()
