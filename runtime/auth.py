"""Bearer-token authentication for the gRPC services (health and reflection stay open).

Tokens come from configuration: `api_tokens` and `train_tokens` may call the Reasoning
service (traffic of `train_tokens` may become training data), `admin_tokens` may call
everything, including the Admin service. With no tokens configured, auth is off. The server
also mints one internal token for the trainer it supervises (admin and train scope); it does
not switch auth on.
"""

from __future__ import annotations

import hashlib
import hmac
from contextlib import aclosing
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
ADMIN_PREFIX = "/rlvr.v1.Admin/"


LOOPBACK_PEERS = ("ipv4:127.", "ipv6:[::1]", "unix:")


def _matches(token: str, allowed: list[str]) -> bool:
    return any(hmac.compare_digest(token.encode(), a.encode()) for a in allowed)


@dataclass(frozen=True)
class Principal:
    """Who sent a request, and whether their verified traffic may become training data."""

    name: str
    can_train: bool

    @property
    def caller(self) -> str:
        """Whose share of the engine and the verifiers a request counts against: the token,
        or an anonymous caller's host (every connection of one host is one caller)."""
        return self.name.rsplit(":", 1)[0] if self.name.startswith("anonymous@") else self.name


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, api_tokens: list[str], admin_tokens: list[str],
                 train_tokens: list[str] = (), trust_local_anonymous: bool = True,
                 internal_tokens: list[str] = ()):
        self.api_tokens, self.admin_tokens = list(api_tokens), list(admin_tokens)
        self.internal_tokens = list(internal_tokens)
        self.train_tokens = list(train_tokens)
        self.trust_local_anonymous = trust_local_anonymous

    def principal(self, metadata, peer: str) -> Principal:
        """The caller: a token's fingerprint (never the token) or anonymous@peer.
        Training trust: train_tokens and admin_tokens, or (auth off, trust_local_anonymous)
        loopback callers, i.e. the local demo."""
        token = self._token(metadata)
        if token and _matches(token, self.internal_tokens):
            return Principal("trainer", True)
        if token and self.enabled:
            name = "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]
            return Principal(name, _matches(token, self.train_tokens + self.admin_tokens))
        local = peer.startswith(LOOPBACK_PEERS)
        can_train = (not self.enabled and local and self.trust_local_anonymous) or \
            bool(token and _matches(token, self.train_tokens))
        return Principal(f"anonymous@{peer}", can_train)

    @staticmethod
    def _token(metadata) -> str:
        header = dict(metadata or ()).get("authorization", "")
        scheme, _, token = header.partition(" ")
        return token if scheme.lower() == "bearer" else ""

    @property
    def enabled(self) -> bool:
        return bool(self.api_tokens or self.admin_tokens or self.train_tokens)

    def check(self, method: str, metadata) -> tuple[grpc.StatusCode, str] | None:
        """None when the call may proceed, else (status code, message)."""
        if method.startswith(OPEN_PREFIXES):
            return None
        token = self._token(metadata)
        if token and _matches(token, self.internal_tokens):
            return None
        if method.startswith(ADMIN_PREFIX) and not self.admin_tokens:
            return (grpc.StatusCode.PERMISSION_DENIED,
                    "the Admin service is disabled: configure admin_tokens to use it")
        if not self.enabled:
            return None
        if not token:
            return (grpc.StatusCode.UNAUTHENTICATED,
                    "missing bearer token (metadata 'authorization: Bearer <token>')")
        if _matches(token, self.admin_tokens):
            return None
        if not _matches(token, self.api_tokens + self.train_tokens):
            return grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token"
        if method.startswith(ADMIN_PREFIX):
            return grpc.StatusCode.PERMISSION_DENIED, f"{method} needs an admin-scoped token"
        return None

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_PREFIXES):
            return handler
        denied = self.check(handler_call_details.method, handler_call_details.invocation_metadata)
        return _replace_behaviour(handler, denied)


class _Undecodable:
    """Stands in for request bytes that do not parse as the method's request message."""


def _replace_behaviour(handler, denied: tuple[grpc.StatusCode, str] | None):
    """The same method, answering a denied caller with `denied` and bytes that are not a
    request message with INVALID_ARGUMENT (gRPC itself would answer UNKNOWN)."""
    parse = handler.request_deserializer

    def deserialize(data: bytes):
        try:
            return parse(data)
        except DecodeError:
            return _Undecodable()

    def refusal(request) -> tuple[grpc.StatusCode, str] | None:
        if isinstance(request, _Undecodable):
            return grpc.StatusCode.INVALID_ARGUMENT, "the request bytes are not a valid message"
        return denied

    if handler.unary_stream:
        inner_stream = handler.unary_stream

        async def stream(request, context):
            if (refused := refusal(request)) is not None:
                await context.abort(*refused)
            async with aclosing(inner_stream(request, context)) as messages:
                async for message in messages:  # closed at once when the client goes away
                    yield message
        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=deserialize,
            response_serializer=handler.response_serializer)
    inner_unary = handler.unary_unary

    async def unary(request, context):
        if (refused := refusal(request)) is not None:
            await context.abort(*refused)
        return await inner_unary(request, context)
    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=deserialize, response_serializer=handler.response_serializer)
