"""Bearer-token authentication for the gRPC services (health and reflection stay open).

Tokens come from configuration: `api_tokens` may call the Reasoning service, `admin_tokens`
may call everything, including the Admin service. With no tokens configured, auth is off.
"""

from __future__ import annotations

import hmac

import grpc

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
ADMIN_PREFIX = "/rlvr.v1.Admin/"


def _matches(token: str, allowed: list[str]) -> bool:
    return any(hmac.compare_digest(token.encode(), a.encode()) for a in allowed)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, api_tokens: list[str], admin_tokens: list[str]):
        self.api_tokens, self.admin_tokens = list(api_tokens), list(admin_tokens)

    @property
    def enabled(self) -> bool:
        return bool(self.api_tokens or self.admin_tokens)

    def check(self, method: str, metadata) -> tuple[grpc.StatusCode, str] | None:
        """None when the call may proceed, else (status code, message)."""
        if not self.enabled or method.startswith(OPEN_PREFIXES):
            return None
        header = dict(metadata or ()).get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return (grpc.StatusCode.UNAUTHENTICATED,
                    "missing bearer token (metadata 'authorization: Bearer <token>')")
        if _matches(token, self.admin_tokens):
            return None
        if not _matches(token, self.api_tokens):
            return grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token"
        if method.startswith(ADMIN_PREFIX):
            return grpc.StatusCode.PERMISSION_DENIED, f"{method} needs an admin-scoped token"
        return None

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        denied = self.check(handler_call_details.method, handler_call_details.invocation_metadata)
        if denied is None or handler is None:
            return handler
        code, message = denied

        async def deny_unary(request, context):
            await context.abort(code, message)

        async def deny_stream(request, context):
            await context.abort(code, message)
            yield  # pragma: no cover - makes this an async generator

        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                deny_stream, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return grpc.unary_unary_rpc_method_handler(
            deny_unary, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
