"""The clients' common base against a live server over a real socket."""

from __future__ import annotations

import pytest

from server.seed.generate import DEMO_SECRETS
from shared.client import ApiClient, ApiError, ConnectionLost, ManagerClient
from shared.enums import Role


async def test_client_logs_in_and_reads_its_profile(city, live_server) -> None:
    async with ApiClient(live_server.url) as api:
        token = await api.login("rider.001", DEMO_SECRETS[Role.RIDER])
        assert token.user.role == Role.RIDER
        me = await api.me()
        assert me.login == "rider.001"
        health = await api.health()
        assert health.status == "ok"


async def test_client_raises_the_problem_code(city, live_server) -> None:
    async with ApiClient(live_server.url) as api:
        with pytest.raises(ApiError) as err:
            await api.login("rider.001", "wrong")
        assert err.value.status == 401 and err.value.code == "invalid_credentials"
        with pytest.raises(ApiError) as err:
            await api.me()
        assert err.value.code == "not_authenticated"


async def test_unreachable_server_is_connection_lost() -> None:
    async with ApiClient("http://127.0.0.1:1", timeout=1) as api:
        with pytest.raises(ConnectionLost):
            await api.me()


def test_socket_urls_carry_the_token_after_their_query() -> None:
    manager = ManagerClient("https://qc.example/", token="t0k")
    assert manager.ops_socket_url("BLR") == "wss://qc.example/ws/ops?city=BLR&token=t0k"
