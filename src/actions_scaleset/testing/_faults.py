"""Fault injection: make chosen routes fail the way real services do.

    fake.faults.add(route="message", status=503, times=3, retry_after=2)
    fake.faults.add(route="session.create", status=409)      # SessionConflict body
    fake.faults.add(route="message", empty=True)             # 200 with no body
    fake.faults.add(route="message", malformed=True)         # 200 with broken JSON
    fake.faults.add(route="broker.*", drop=True)             # connection dropped
    fake.faults.add(route="*", delay=0.5, times=None)        # every request, forever
    fake.faults.add(route="*", status=503, rate=0.1, times=None, seed=7)  # 10% of requests

`route` is a glob over route names (see `FakeGitHub.routes()`); a name or glob that
matches no route is a `ValueError` listing them, so a typo cannot pass a test
silently. A fault fires for
the next `times` matching requests (None: forever), after skipping `skip` of them;
with `rate` below 1 it fires for that share of them, drawn from a generator seeded
with `seed`, so a run is repeatable.
With `after_processing=True` the request is handled first and the answer then
replaced: the state changed but the client never heard (a lost response).
"""

from __future__ import annotations

import difflib
import fnmatch
import random
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from ._http import Response, Surface, actions_error, error_for, json_response

__all__ = ["Fault", "Faults"]

_REPR_LIMIT: Final = 3
"""`repr(Faults)` shows this many pending faults, then how many more there are."""
_MALFORMED = b'{"messageId": 7, "messageType": "RunnerScaleSetJobMessages", "body": "[{\\"messa'


@attrs.define(repr=False)
class Fault:
    """One injected failure. `hits` counts how often it fired."""

    route: str = "*"
    method: str | None = None
    status: int | None = None
    retry_after: float | str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: Any = None
    """JSON-able value or bytes; default: the service's own error shape for `status`."""
    delay: float = 0.0
    drop: bool = False
    empty: bool = False
    malformed: bool = False
    times: int | None = 1
    skip: int = 0
    after_processing: bool = False
    rate: float = 1.0
    seed: int | None = 0
    hits: int = attrs.field(default=0, init=False)
    _seen: int = attrs.field(default=0, init=False)
    _random: random.Random = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        answers = [self.status is not None, self.drop, self.empty, self.malformed]
        if sum(answers) > 1:
            raise ValueError("a fault answers with one of status=, drop=, empty= or malformed=")
        if not any(answers) and self.delay <= 0:
            raise ValueError("a fault needs status=, drop=, empty=, malformed= or delay=")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        if not 0 < self.rate <= 1:
            raise ValueError("rate is the share of matching requests that fail: 0 < rate <= 1")
        self._random = random.Random(self.seed)  # noqa: S311 - a repeatable schedule, not a secret

    def __repr__(self) -> str:
        """The route, what is not a default, and `hits`: `Fault(route='message', status=503, hits=1)`."""
        shown = [f"route={self.route!r}"]
        for field in attrs.fields(Fault):
            if not field.init or field.name == "route" or field.name.startswith("_"):
                continue
            value = getattr(self, field.name)
            if value != field.default and not (field.name == "headers" and not value):
                shown.append(f"{field.name}={value!r}")
        shown.append(f"hits={self.hits}")
        return f"Fault({', '.join(shown)})"

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    @property
    def answers(self) -> bool:
        """It replaces the answer (rather than only delaying it)."""
        return self.status is not None or self.drop or self.empty or self.malformed

    def matches(self, route: str | None, method: str) -> bool:
        if self.exhausted:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(route or "", self.route)

    def take(self) -> bool:
        """Count a matching request; True when the fault fires for it."""
        self._seen += 1
        if self._seen <= self.skip:
            return False
        if self.rate < 1 and self._random.random() >= self.rate:
            return False
        self.hits += 1
        return True

    def response(self, surface: Surface, route: str | None) -> Response:
        """The answer this fault gives (not for `drop`)."""
        if self.empty:
            response = Response(200, b"", [("content-type", "application/json; charset=utf-8")])
        elif self.malformed:
            response = Response(200, _MALFORMED, [("content-type", "application/json; charset=utf-8")])
        else:
            response = self._status_response(surface, route)
        if self.retry_after is not None:
            response.headers.append(("retry-after", _retry_after(self.retry_after)))
        response.headers.extend((k.lower(), v) for k, v in self.headers.items())
        return response

    def _status_response(self, surface: Surface, route: str | None) -> Response:
        status = self.status if self.status is not None else 500
        if isinstance(self.body, bytes):
            return Response(status, self.body, [("content-type", "application/octet-stream")])
        if self.body is not None:
            return json_response(status, self.body)
        if route == "session.create" and status == 409:
            return actions_error(
                409,
                "RunnerScaleSetSessionConflictException",
                "The actions runner scaleset already has an active session.",
            )
        return error_for(surface, status)


def _retry_after(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


class Faults:
    """The faults waiting to fire, first added first.

    Given the `routes` it serves (as `FakeGitHub` does), `add()` refuses a route name or
    glob that matches none of them.
    """

    def __init__(self, routes: Iterable[str] | None = None) -> None:
        self._faults: list[Fault] = []
        self._routes = tuple(dict.fromkeys(routes)) if routes is not None else None

    def __repr__(self) -> str:
        pending = self.pending
        shown = ", ".join(repr(fault) for fault in pending[:_REPR_LIMIT])
        more = f", … {len(pending) - _REPR_LIMIT} more" if len(pending) > _REPR_LIMIT else ""
        return f"Faults([{shown}{more}])"

    def add(
        self,
        route: str = "*",
        *,
        method: str | None = None,
        status: int | None = None,
        retry_after: float | str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        delay: float = 0.0,
        drop: bool = False,
        empty: bool = False,
        malformed: bool = False,
        times: int | None = 1,
        skip: int = 0,
        after_processing: bool = False,
        rate: float = 1.0,
        seed: int | None = 0,
    ) -> Fault:
        """Add a fault and return it (its `hits` says how often it fired).

        `ValueError` when `route` matches none of the known routes.
        """
        self._check_route(route)
        fault = Fault(
            route=route,
            method=method,
            status=status,
            retry_after=retry_after,
            headers=dict(headers or {}),
            body=body,
            delay=delay,
            drop=drop,
            empty=empty,
            malformed=malformed,
            times=times,
            skip=skip,
            after_processing=after_processing,
            rate=rate,
            seed=seed,
        )
        self._faults.append(fault)
        return fault

    def _check_route(self, route: str) -> None:
        if self._routes is None:
            return
        if not isinstance(route, str):
            raise TypeError(f"route is a route name or a glob over them, not {type(route).__name__}")
        if any(fnmatch.fnmatchcase(name, route) for name in self._routes):
            return
        close = [repr(name) for name in difflib.get_close_matches(route, self._routes, n=3)]
        hint = ""
        if close:
            options = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
            hint = f" (did you mean {options}?)"
        raise ValueError(f"no route matches {route!r}{hint}; the routes are: {', '.join(self._routes)}")

    def clear(self) -> None:
        self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        return [f for f in self._faults if not f.exhausted]

    def take(self, route: str | None, method: str) -> list[Fault]:
        """The faults that fire for this request: every delay, then at most one answer."""
        fired: list[Fault] = []
        answered = False
        for fault in self._faults:
            if not fault.matches(route, method) or (fault.answers and answered):
                continue
            if fault.take():
                fired.append(fault)
                answered = answered or fault.answers
        self._faults = [f for f in self._faults if not f.exhausted]
        return fired
