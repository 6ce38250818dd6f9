"""The read acks' lean POST path (apps/chat/api_base.py, LeanPostUserTokenApi) answers exactly what DRF's path
answers: the same status, bytes and headers. Each case runs once as served, once with the lean path switched
off (every request through DRF's dispatch), and the two answers are compared."""

from __future__ import annotations

import pytest
from rest_framework.views import APIView

from apps.chat.api_base import LeanPostUserTokenApi

HEADERS = ("Content-Type", "Allow", "WWW-Authenticate", "X-Frame-Options", "X-Content-Type-Options")


@pytest.fixture
def through_drf(monkeypatch):
    """Switch the lean path off: dispatch is DRF's for every request."""

    def switch():
        monkeypatch.setattr(LeanPostUserTokenApi, "dispatch", APIView.dispatch)

    return switch


def answer(response) -> tuple:
    return response.status_code, response.content, {name: response.get(name) for name in HEADERS}


def _requests(scene):
    """(label, request) pairs: successes, repeats and contract errors of the three ack endpoints, then the
    answers DRF gives before any view code runs (no token, a bad token, an app token, another app's URL)."""
    world, alice, bob, carol, group, single, grouped = scene
    base = world.base
    app_token = world.app.client_id  # not a token at all: a bad one
    return [
        ("message ack", lambda: world.message_ack(bob, single.message_id)),
        ("message ack repeat", lambda: world.message_ack(bob, single.message_id)),
        ("message ack not_recipient", lambda: world.message_ack(carol, single.message_id)),
        ("message ack message_not_found", lambda: world.message_ack(bob, "nope")),
        ("conversation ack", lambda: world.conversation_ack(bob, alice.username)),
        ("conversation ack nothing unread", lambda: world.conversation_ack(bob, alice.username)),
        ("conversation ack user_not_found", lambda: world.conversation_ack(bob, "nobody")),
        ("group ack", lambda: world.group_ack(bob, group.group_id, grouped.message_id)),
        ("group ack repeat", lambda: world.group_ack(bob, group.group_id, grouped.message_id)),
        ("group ack own_message", lambda: world.group_ack(alice, group.group_id, grouped.message_id)),
        ("group ack not_group_member", lambda: world.group_ack(carol, group.group_id, grouped.message_id)),
        ("group ack group_not_found", lambda: world.group_ack(bob, "nope", grouped.message_id)),
        ("no token", lambda: bob.client.__class__().post(f"{base}/messages/{single.message_id}/read_ack")),
        ("bad token", lambda: bob.client.__class__().post(
            f"{base}/messages/{single.message_id}/read_ack", HTTP_AUTHORIZATION=f"Bearer {app_token}")),
        ("other app's url", lambda: bob.client.post(f"/api/v1/other/app/messages/{single.message_id}/read_ack")),
        ("GET", lambda: bob.client.get(f"{base}/messages/{single.message_id}/read_ack")),
    ]


def _run_all(scene) -> dict:
    return {label: answer(request()) for label, request in _requests(scene)}


def test_lean_post__every_answer_is_drfs(group_world, through_drf):
    world = group_world
    # The same scene twice, on fresh users and messages: bodies are compared with each run's ids replaced.
    lean_scene = _scene(world, "1")
    lean = _run_all(lean_scene)
    through_drf()
    drf_scene = _scene(world, "2")
    drf = _run_all(drf_scene)

    assert set(lean) == set(drf)
    for label in lean:
        status, body, headers = lean[label]
        drf_status, drf_body, drf_headers = drf[label]
        assert (status, headers) == (drf_status, drf_headers), label
        assert _neutral(body, lean_scene) == _neutral(drf_body, drf_scene), label
    assert lean["group ack"][0] == 200 and lean["group ack"][2]["Allow"] == "POST, OPTIONS"
    assert lean["no token"][0] == 401 and lean["GET"][0] == 405


def _scene(world, suffix: str):
    alice, bob = world.login(f"alice{suffix}"), world.login(f"bob{suffix}")
    carol = world.login(f"carol{suffix}")
    group = world.group(f"alice{suffix}", members=[f"bob{suffix}"])
    single = world.send(alice, f"bob{suffix}")
    grouped = world.send_group(alice, group)
    return world, alice, bob, carol, group, single, grouped


def _neutral(body: bytes, scene) -> bytes:
    """The body with this scene's own ids and names replaced by placeholders."""
    world, alice, bob, carol, group, single, grouped = scene
    text = body.decode()
    for value, name in ((single.message_id, "SINGLE"), (grouped.message_id, "GROUPED"), (group.group_id, "GROUP")):
        text = text.replace(value, name)
    for device, name in ((alice, "ALICE"), (bob, "BOB"), (carol, "CAROL")):
        text = text.replace(f'"{device.username}"', f'"{name}"').replace(f"'{device.username}'", f"'{name}'")
    return text.encode()
