"""The HTTP plumbing under HookClient: sessions with urllib3 retries, consecutive connection
failures counted, control-plane errors named by endpoint, and the liveness check that decides
when a server is gone (`ServerUnreachable`) rather than slow or dropping connections."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from hookbench.base.errors import ServerError
from hookbench.hookapi import contract


class ServerUnreachable(ServerError):
    """Consecutive requests found no server at all (refused, reset): stop instead of retrying on."""


class DroppedConnectionRetry(Retry):
    """Retries a connection the server dropped (reset or aborted: e.g. a kept-alive connection it
    closed after failing to render an answer), never a read timeout: a timeout means the server is
    still generating, and asking again would queue a second generation behind it (§8)."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if isinstance(error, ReadTimeoutError):
            raise error
        return super().increment(method, url, response, error, _pool, _stacktrace)


class HookTransport:
    """One hook server. `token` goes in an Authorization header and is never logged.

    `max_connection_failures` consecutive requests that could not reach the server (each already
    retried `retries` times) make `generate`/`losses` raise ServerUnreachable; any answer resets it.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout_s: float = 300.0,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_connection_failures: int = 3,
    ):
        self.base_url = base_url.rstrip("/")
        self._settings = {"token": token, "timeout_s": timeout_s, "connect_timeout_s": connect_timeout_s,
                          "retries": retries, "backoff_s": backoff_s, "max_connection_failures": max_connection_failures}
        self.timeout = (connect_timeout_s, timeout_s)
        self.max_connection_failures = max(1, int(max_connection_failures))
        self.connection_failures = 0  # consecutive; reset by any HTTP answer
        self.loss_requests = 0  # /api/loss and /api/loss/batch requests sent
        retry = DroppedConnectionRetry(
            total=retries,
            connect=retries,
            read=retries,  # a dropped connection (reset, aborted) only: never a read timeout, see the class
            status=retries,
            backoff_factor=backoff_s,
            backoff_max=4 * backoff_s,  # 0, 1, 2, 2, ... s at defaults: a dead server is found in seconds
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=None,  # generate, loss, restore and DELETE are safe to repeat; hooks is not (below)
            raise_on_status=False,
        )
        self.session = self._session(HTTPAdapter(max_retries=retry), token)
        once = Retry(total=0, read=False, raise_on_status=False)
        self.no_retry_session = self._session(HTTPAdapter(max_retries=once), token)
        self._health: dict | None = None

    @staticmethod
    def _session(adapter: HTTPAdapter, token: str | None) -> requests.Session:
        s = requests.Session()
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        if token:
            s.headers["Authorization"] = f"Bearer {token}"
        return s

    def twin(self):
        """A client for the same server with its own connections, for a request sent from another thread
        (a requests.Session is not meant to be shared between threads)."""
        other = type(self)(self.base_url, **self._settings)
        other._health = self._health
        return other

    # -- plumbing ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, json: dict | None = None, retry: bool = True) -> requests.Response:
        """One request; counts consecutive connection failures (an HTTP answer of any status resets)."""
        session = self.session if retry else self.no_retry_session
        try:
            r = session.request(method, self.base_url + path, json=json, timeout=self.timeout)
        except requests.ConnectionError:  # refused, reset, connect timeout; a read timeout is not one
            self.connection_failures += 1
            raise
        self.connection_failures = 0
        return r

    def _unreachable(self, what: str, err: Exception) -> ServerUnreachable:
        return ServerUnreachable(
            f"{self.base_url} did not answer {self.connection_failures} requests in a row ({what}; last: "
            f"{str(err)[:300]}); stopping. Is the server still running?")

    def _call(self, method: str, path: str, json: dict | None = None) -> dict:
        """A control-plane call: any failure is a ServerError naming the endpoint."""
        try:
            r = self._request(method, path, json)
        except requests.RequestException as e:
            raise ServerError(f"{method} {self.base_url}{path} failed: {e}") from None
        return self._json(method, path, r)

    def _json(self, method: str, path: str, r: requests.Response) -> dict:
        if r.status_code >= 400:
            raise ServerError(f"{method} {self.base_url}{path} -> HTTP {r.status_code}: {r.text[:1000]}")
        try:
            return r.json()
        except ValueError:
            raise ServerError(f"{method} {self.base_url}{path} returned non-JSON: {r.text[:200]!r}") from None

    def _give_up_if_dead(self, what: str, err: Exception) -> None:
        if self.connection_failures >= self.max_connection_failures and not self._alive():
            raise self._unreachable(what, err) from None

    def alive(self) -> bool:
        """Whether the server answers /api/health at all (any HTTP status)."""
        return self._alive()

    def _alive(self) -> bool:
        """A server that drops connections but still answers /api/health is alive (FastAPI closes the
        connection of a response it failed to render, e.g. a NaN loss under an overflowing patch)."""
        try:
            self.no_retry_session.get(self.base_url + contract.HEALTH, timeout=self.timeout)
        except requests.RequestException:
            return False
        self.connection_failures = 0
        return True
