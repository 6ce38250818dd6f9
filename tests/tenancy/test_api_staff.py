"""POST /api/v1/admin/staff (SPEC §4): superusers create operator and business accounts."""

import pytest
from django.contrib.auth import get_user_model

from apps.tenancy.roles import staff_roles

URL = "/api/v1/admin/staff"
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", ["operator", "business"])
def test_staff_create__superuser__201_username_and_role(superuser_client, api_client, role):
    response = superuser_client.post(URL, {"username": "carol", "password": "long-enough-pw", "role": role},
                                     format="json")
    assert response.status_code == 201
    assert response.json() == {"username": "carol", "role": role}
    # The new account holds exactly that role and can log in.
    assert staff_roles(get_user_model().objects.get(username="carol")) == frozenset({role})
    login = api_client.post("/api/v1/admin/token", {"username": "carol", "password": "long-enough-pw"},
                            format="json")
    assert login.status_code == 200


def test_staff_create__duplicate_username__409_duplicate_username(superuser_client):
    body = {"username": "carol", "password": "long-enough-pw", "role": "operator"}
    assert superuser_client.post(URL, body, format="json").status_code == 201
    response = superuser_client.post(URL, body | {"role": "business"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == "duplicate_username"
    assert get_user_model().objects.filter(username="carol").count() == 1


def test_staff_create__username_of_the_superuser__409_duplicate_username(superuser_client):
    response = superuser_client.post(URL, {"username": "root", "password": "long-enough-pw", "role": "operator"},
                                     format="json")
    assert response.status_code == 409
    assert response.json()["error"] == "duplicate_username"


@pytest.mark.parametrize("client_fixture", ["operator_client", "business_client"])
def test_staff_create__not_a_superuser__403_forbidden(request, client_fixture):
    client = request.getfixturevalue(client_fixture)
    response = client.post(URL, {"username": "carol", "password": "long-enough-pw", "role": "operator"},
                           format="json")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert not get_user_model().objects.filter(username="carol").exists()


def test_staff_create__no_token__401_unauthenticated(api_client):
    response = api_client.post(URL, {"username": "carol", "password": "long-enough-pw", "role": "operator"},
                               format="json")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


@pytest.mark.parametrize("body,bad_field", [
    ({"username": "carol", "password": "long-enough-pw", "role": "admin"}, "role"),
    ({"username": "carol", "password": "long-enough-pw"}, "role"),
    ({"username": "carol", "password": "short", "role": "operator"}, "password"),
    ({"username": "carol", "role": "operator"}, "password"),
    ({"username": "has space", "password": "long-enough-pw", "role": "operator"}, "username"),
    ({"username": "x" * 151, "password": "long-enough-pw", "role": "operator"}, "username"),
    ({"username": "", "password": "long-enough-pw", "role": "operator"}, "username"),
])
def test_staff_create__invalid_field__400_invalid_request_with_fields(superuser_client, body, bad_field):
    response = superuser_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert bad_field in response.json()["fields"]
    assert not get_user_model().objects.filter(username="carol").exists()
