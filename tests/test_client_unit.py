"""The client library without a server: both clients have every method, and a call's status
becomes RlvrError the same way in both."""

from __future__ import annotations

import asyncio
import inspect

import grpc
import pytest

from clients.client import AsyncClient, Client, RlvrError
from rlvr.v1 import reasoning_pb2 as pb


def public(cls) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls, callable) if not name.startswith("_")}


def test_both_clients_have_every_method():
    assert public(Client) - {"close"} == public(AsyncClient) - {"close"}
    assert {"ask", "ask_n", "stream", "abort", "feedback", "model_info", "list_versions",
            "training_status", "promote", "rollback", "stage_adapter", "pause_training",
            "resume_training"} <= public(AsyncClient)


class Failed(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.PERMISSION_DENIED

    def details(self):
        return "admin token required"


def test_a_call_is_run_blocking_or_awaited_and_its_status_raised_alike():
    seen = []

    def blocking(request, metadata):
        seen.append((request, metadata))
        return pb.AbortResponse(aborted=["r1"])

    async def awaited(request, metadata):
        return blocking(request, metadata)

    def refused(request, metadata):
        raise Failed()

    async def refused_async(request, metadata):
        raise Failed()

    with Client("localhost:1", token="t") as client:
        client.stub.Abort = blocking
        assert client.abort("r1", "r2") == ["r1"]
        assert list(seen[0][0].request_ids) == ["r1", "r2"]
        assert seen[0][1] == (("authorization", "Bearer t"),)
        client.admin.Promote = refused
        with pytest.raises(RlvrError) as err:
            client.promote("v1")
        assert err.value.code == grpc.StatusCode.PERMISSION_DENIED

    async def run():
        async with AsyncClient("localhost:1") as client:
            client.stub.Abort = awaited
            assert await client.abort("r3") == ["r1"]
            client.admin.Promote = refused_async
            with pytest.raises(RlvrError, match="PERMISSION_DENIED: admin token required"):
                await client.promote("v1")
    asyncio.run(run())
