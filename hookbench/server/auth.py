"""Bearer-token access to the reference server, so nobody else who reaches the port can patch the model.

Every request but `GET /api/health` needs `Authorization: Bearer <token>` (401 otherwise; compared
in constant time). The token comes from an environment variable, never the command line (other
users see argv in `ps`), and is never logged or echoed. A server on a non-loopback address without
a token does not start unless asked to with `--insecure-no-token`.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import sys
from typing import TYPE_CHECKING

from hookbench.hookapi import contract

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT_ENV = contract.SERVER_TOKEN_ENV
UNAUTHORIZED = "missing or wrong bearer token: send 'Authorization: Bearer <token>'"


class AuthSetupError(ValueError):
    """The server cannot start with these auth settings; the message says what to change."""


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def startup_token(token_env: str | None, host: str, insecure_no_token: bool) -> str | None:
    """The token to require (None: none), or AuthSetupError for a missing variable or an open public bind."""
    if token_env is not None:
        token = os.environ.get(token_env)
        if not token:
            raise AuthSetupError(f"--token-env names {token_env}, which is not set (or empty) in the environment")
        return token
    if token := os.environ.get(DEFAULT_ENV):
        return token
    if not is_loopback(host) and not insecure_no_token:
        raise AuthSetupError(
            f"refusing to listen on {host} without a token: anyone who reaches it could patch the model. "
            f"Put a token in an environment variable and pass --token-env VAR (or set {DEFAULT_ENV}), "
            "or pass --insecure-no-token if an open server is really meant")
    return None


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--token-env", metavar="VAR",
                    help="env var holding the bearer token every endpoint but /api/health requires "
                         f"(default: ${DEFAULT_ENV} when set)")
    ap.add_argument("--insecure-no-token", action="store_true",
                    help="allow a non-loopback --host without a token (anyone reaching it can patch the model)")


def cli_token(args: argparse.Namespace) -> str | None:
    """startup_token for the parsed CLI; says on stderr whether auth is on (never the token itself)."""
    token = startup_token(args.token_env, args.host, args.insecure_no_token)
    if token:
        print(f"hookbench.server: bearer token required (from ${args.token_env or DEFAULT_ENV})", file=sys.stderr)
    elif not is_loopback(args.host):
        print(f"hookbench.server: WARNING: --insecure-no-token: {args.host}:{args.port} is OPEN to anyone who "
              "can reach it; they can patch the model and read every generation", file=sys.stderr)
    else:
        print(f"hookbench.server: no token: any local user can call {args.host}:{args.port} "
              f"(set {DEFAULT_ENV} or --token-env to require one)", file=sys.stderr)
    return token


class BearerAuth:
    """ASGI middleware: 401 for any request without the token (a websocket is closed), except GET/HEAD /api/health."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        from starlette.responses import JSONResponse  # here: the launcher imports DEFAULT_ENV without the server extra

        self.app = app
        self.expected = token.encode()
        self.refusal = JSONResponse({"detail": UNAUTHORIZED}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    def _allowed(self, scope: Scope) -> bool:
        if scope["path"] == contract.HEALTH and scope.get("method") in ("GET", "HEAD"):
            return True
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, given = header.partition(b" ")
        return scheme.lower() == b"bearer" and secrets.compare_digest(given.strip(), self.expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._allowed(scope):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})  # policy violation
        await self.refusal(scope, receive, send)


def protect(app: FastAPI, token: str | None) -> None:
    """Require `token` on every endpoint of `app` but health; None leaves it open."""
    if token:
        app.add_middleware(BearerAuth, token=token)
