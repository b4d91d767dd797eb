"""Key administration over HTTP, gRPC and the CLI; a non-admin key gets 403 everywhere."""

from __future__ import annotations

import subprocess
from typing import Any

import grpc
import pytest
from switchyard.v1 import admin_pb2, admin_pb2_grpc

from tests.fixtures.gateway import SWITCHYARD, Gateway
from tests.fixtures.http import RawResponse, request


def admin_key(gateway: Gateway) -> str:
    return (gateway.data_dir / "admin-key").read_text().strip()


def call(gateway: Gateway, method: str, path: str, key: str, body: Any = None) -> RawResponse:
    return request(method, gateway.base_url + path, body, {"Authorization": f"Bearer {key}"})


def test_admin_over_http(service: Gateway) -> None:
    admin = admin_key(service)
    created = call(
        service,
        "POST",
        "/keys",
        admin,
        {"name": "team-a", "limit": 2.5, "rpm": 10, "allowed_models": ["mock/*"]},
    )
    assert created.status == 201, created.body
    secret, key = created.json()["key"], created.json()["data"]
    assert secret.startswith("sk-sy-") and secret not in str(key)
    assert (key["limit"], key["rate_limit"]["requests"], key["allowed_models"]) == (
        2.5,
        10,
        ["mock/*"],
    )
    kid = key["id"]
    # The new key works, within its policy, and sees itself.
    own = call(service, "GET", "/key", secret).json()["data"]
    assert (own["id"], own["limit"], own["limit_remaining"]) == (kid, 2.5, 2.5)
    assert own["label"] == secret[:12] + "..."
    assert call(service, "GET", "/credits", secret).json()["data"] == {
        "total_credits": 2.5,
        "total_usage": 0.0,
    }
    assert [k["id"] for k in call(service, "GET", "/keys", admin).json()["data"]].count(kid) == 1
    assert call(service, "GET", f"/keys/{kid}", admin).json()["data"]["name"] == "team-a"
    updated = call(service, "PATCH", f"/keys/{kid}", admin, {"rpm": None, "tpm": 5000})
    assert updated.json()["data"]["rate_limit"] == {
        "requests": None,
        "tokens": 5000,
        "concurrent": None,
        "interval": "1m",
    }
    topped = call(service, "POST", f"/keys/{kid}/credits", admin, {"amount": 1.5})
    assert topped.json()["data"]["limit"] == pytest.approx(4.0)
    assert call(service, "DELETE", f"/keys/{kid}", admin).json() == {"deleted": True}
    for method, path, body in (
        ("GET", f"/keys/{kid}", None),
        ("PATCH", f"/keys/{kid}", {"rpm": 5}),
        ("DELETE", f"/keys/{kid}", None),
        ("POST", f"/keys/{kid}/credits", {"amount": 1}),
        ("GET", "/keys/key_never_was", None),
    ):
        gone = call(service, method, path, admin, body)
        assert gone.status == 404, (method, path, gone.body)
        assert gone.json()["error"]["type"] == "not_found_error"
    assert call(service, "GET", "/key", secret).status == 401
    bad = call(service, "POST", "/keys", admin, {"name": "x", "rpm": 0})
    assert bad.status == 400 and bad.json()["error"]["param"] == "rpm"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/keys", None),
        ("POST", "/keys", {"name": "sneaky"}),
        ("GET", "/keys/key_x", None),
        ("PATCH", "/keys/key_x", {"rpm": 1}),
        ("DELETE", "/keys/key_x", None),
        ("POST", "/keys/key_x/credits", {"amount": 100}),
    ],
)
def test_non_admin_gets_403_over_http(service: Gateway, method: str, path: str, body: Any) -> None:
    raw = call(service, method, path, service.key, body)
    assert raw.status == 403
    assert raw.json()["error"]["type"] == "permission_error"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/keys", {"bogus_field": 1}),
        ("POST", "/keys", b"not json"),
        ("PATCH", "/keys/key_x", {"rpm": "many"}),
        ("POST", "/keys/key_x/credits", {"amount": "lots"}),
    ],
)
def test_non_admin_learns_nothing_from_a_bad_admin_body(
    service: Gateway, method: str, path: str, body: Any
) -> None:
    """Authorised before validated: a 403 that names no field, never a 400 that does."""
    raw = call(service, method, path, service.key, body)
    assert raw.status == 403, raw.body
    error = raw.json()["error"]
    assert error["param"] is None and "bogus" not in error["message"]
    # An unknown key is still a 401, and an admin still gets the 400.
    assert call(service, method, path, "sk-sy-nobody", body).status == 401
    assert call(service, method, path, admin_key(service), body).status == 400


def test_admin_over_grpc(service: Gateway) -> None:
    admin = (("authorization", f"Bearer {admin_key(service)}"),)
    user = (("authorization", f"Bearer {service.key}"),)
    with grpc.insecure_channel(service.grpc_target) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        created = stub.CreateKey(
            admin_pb2.CreateKeyRequest(
                name="grpc-team", policy=admin_pb2.KeyPolicy(credit_limit=1.0, max_concurrent=2)
            ),
            metadata=admin,
        )
        kid = created.key.id
        assert created.secret.startswith("sk-sy-") and created.key.policy.max_concurrent == 2
        assert kid in [
            k.id for k in stub.ListKeys(admin_pb2.ListKeysRequest(), metadata=admin).keys
        ]
        assert stub.GetKey(admin_pb2.GetKeyRequest(id=kid), metadata=admin).name == "grpc-team"
        updated = stub.UpdateKey(
            admin_pb2.UpdateKeyRequest(
                id=kid, name="renamed", policy=admin_pb2.KeyPolicy(), update_fields=["credit_limit"]
            ),
            metadata=admin,
        )
        assert updated.name == "renamed" and not updated.policy.HasField("credit_limit")
        topped = stub.AddCredits(admin_pb2.AddCreditsRequest(id=kid, amount=3), metadata=admin)
        assert topped.policy.credit_limit == 3
        own = admin_pb2_grpc.AccountServiceStub(channel).GetOwnKey(
            admin_pb2.GetOwnKeyRequest(), metadata=(("authorization", f"Bearer {created.secret}"),)
        )
        assert own.id == kid
        assert stub.DeleteKey(admin_pb2.DeleteKeyRequest(id=kid), metadata=admin).deleted
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListKeys(admin_pb2.ListKeysRequest(), metadata=user)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetKey(admin_pb2.GetKeyRequest(id=kid), metadata=admin)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def cli(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SWITCHYARD), "--data-dir", str(gateway.data_dir), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_admin_over_the_cli(service: Gateway) -> None:
    created = cli(
        service,
        "keys",
        "create",
        "--name",
        "cli-team",
        "--limit",
        "1",
        "--rpm",
        "7",
        "--models",
        "mock/*,local/*",
    )
    assert created.returncode == 0, created.stderr
    fields = dict(line.split(":", 1) for line in created.stdout.splitlines())
    kid, secret = fields["id"].strip(), fields["key"].strip()
    listed = cli(service, "keys", "list").stdout
    assert kid in listed and "limit $1" in listed and "rpm 7" in listed and secret not in listed
    assert cli(service, "credits", "add", kid, "2.5").stdout.startswith(f"{kid}: limit $3.5")
    updated = cli(service, "keys", "update", kid, "--tpm", "900", "--clear", "rpm")
    assert "tpm 900" in updated.stdout and "rpm" not in updated.stdout
    own = call(service, "GET", "/key", secret)
    assert own.status == 200 and own.json()["data"]["limit"] == pytest.approx(3.5)
    assert cli(service, "keys", "delete", kid).returncode == 0
    assert cli(service, "keys", "delete", kid).returncode == 1
    assert cli(service, "credits", "add", kid, "-1").returncode == 2


def test_a_budget_that_resets_over_http(service: Gateway) -> None:
    """limit_reset is set and shown by the admin API; usage_daily/weekly/monthly are in
    GET /v1/key; an unknown period is a 400 naming the field."""
    admin = admin_key(service)
    created = call(
        service, "POST", "/keys", admin, {"name": "b", "limit": 1, "limit_reset": "daily"}
    )
    assert created.status == 201, created.body
    data, secret = created.json()["data"], created.json()["key"]
    assert data["limit_reset"] == "daily"
    assert (
        call(
            service,
            "POST",
            "/chat/completions",
            secret,
            {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]},
        ).status
        == 200
    )
    own = call(service, "GET", "/key", secret).json()["data"]
    assert {k: own[k] for k in ("usage", "usage_daily", "usage_weekly", "usage_monthly")} == {
        "usage": 0.0,
        "usage_daily": 0.0,
        "usage_weekly": 0.0,
        "usage_monthly": 0.0,
    }  # mock/echo is free: the fields are there, and exact
    assert own["limit_remaining"] == 1
    weekly = call(service, "PATCH", f"/keys/{data['id']}", admin, {"limit_reset": "weekly"})
    assert weekly.json()["data"]["limit_reset"] == "weekly"
    cleared = call(service, "PATCH", f"/keys/{data['id']}", admin, {"limit_reset": None})
    assert cleared.json()["data"]["limit_reset"] is None
    bad = call(service, "POST", "/keys", admin, {"name": "c", "limit": 1, "limit_reset": "hourly"})
    assert bad.status == 400
    assert bad.json()["error"]["param"] == "limit_reset"
