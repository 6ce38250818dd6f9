"""Django admin (/django-admin/): every model is registered, its pages open, and no secret is shown."""

import pytest
from django.apps import apps as django_apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from apps.chat.models import AccessToken, ChatUser, Message
from apps.chat.services import app_token_issue, chat_user_create, group_create, message_send, user_token_issue
from apps.policy.services import app_secret_rotate, policy_update
from apps.tenancy.models import App, StaffToken
from apps.tenancy.services import staff_token_issue
from apps.webhooks.models import WebhookEndpoint
from apps.webhooks.services import endpoint_create, endpoint_secret_rotate, endpoint_test_send

pytestmark = pytest.mark.django_db
PROJECT_APPS = {"tenancy", "policy", "audit", "chat", "events", "receipts", "webhooks"}


@pytest.fixture
def data(make_app):
    """One of everything, made through the services."""
    app = make_app(org_name="acme", app_name="chat", plan="pro")
    root = get_user_model().objects.create_superuser(username="root", password="root-password")
    staff_token_issue(username="root", password="root-password")
    policy_update(actor=root, app=app, changes={"group_read_ack_enabled": True, "group_ack_ttl_days": 5})
    alice = chat_user_create(app=app, username="alice", password="alice-password")
    chat_user_create(app=app, username="bob", password="bob-password")
    app_token_issue(app=app, client_id=app.client_id, client_secret=app.client_secret)
    app_secret_rotate(actor=root, app=app, grace_seconds=600)  # a previous secret's hash, still in its grace
    _, _, _, device = user_token_issue(app=app, username="alice", password="alice-password")
    group = group_create(app=app, name="team", owner="alice", members=["bob"])
    message_send(app=app, sender=alice, device=device, chat_type="single", to="bob", body={"text": "hi"})
    message_send(app=app, sender=alice, device=device, chat_type="group", to=group.group_id, body={"text": "all"},
                 need_group_ack=True)
    endpoint, _ = endpoint_create(actor=root, app=app, url="https://93.184.216.34/hook", event_types=["message.read"])
    endpoint_test_send(endpoint=endpoint)
    endpoint_secret_rotate(actor=root, endpoint=endpoint)
    return app


@pytest.fixture
def admin_client(client, data):
    client.login(username="root", password="root-password")
    return client


def project_models():
    return [m for m in django_apps.get_models() if m._meta.app_label in PROJECT_APPS]


def test_django_admin__every_project_model_is_registered():
    missing = [m._meta.label for m in project_models() if not admin.site.is_registered(m)]
    assert missing == []


def test_django_admin__every_changelist_and_change_page_opens(admin_client):
    for model in project_models():
        meta = model._meta
        changelist = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert changelist.status_code == 200, meta.label
        search = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"), {"q": "acme"})
        assert search.status_code == 200, meta.label
        row = model.objects.first()
        if row is not None:
            change = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[row.pk]))
            assert change.status_code == 200, meta.label


def test_django_admin__secrets_and_hashes_never_shown(admin_client, data):
    app = App.objects.get()
    assert app.previous_secret_hash
    secrets = [app.client_secret_hash, app.previous_secret_hash, data.client_secret]
    secrets += list(StaffToken.objects.values_list("key_hash", flat=True))
    secrets += list(AccessToken.objects.values_list("key_hash", flat=True))
    secrets += list(get_user_model().objects.values_list("password", flat=True))
    secrets += list(ChatUser.objects.values_list("password", flat=True))
    for endpoint in WebhookEndpoint.objects.all():
        secrets += [s.removeprefix("whsec_") for s in (endpoint.secret, endpoint.previous_secret)]
    pages = []
    for model in (App, StaffToken, AccessToken, ChatUser, WebhookEndpoint):
        meta = model._meta
        pages.append(admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")))
        for row in model.objects.all():
            pages.append(admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[row.pk])))
    html = b"".join(p.content for p in pages).decode()
    assert all(p.status_code == 200 for p in pages)
    leaked = [s for s in secrets if s and s in html]
    assert leaked == []


def test_django_admin__audited_data_cannot_be_edited_there(admin_client):
    # Plan and policy changes must leave an audit row, which only the API/console services write.
    from apps.audit.models import AuditEntry
    from apps.policy.models import ReceiptPolicy

    for model in (App, ReceiptPolicy, AuditEntry, Message):
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[model.objects.first().pk])
        response = admin_client.post(url, {})
        assert response.status_code == 403, meta.label
    assert admin_client.get(reverse("admin:tenancy_app_add")).status_code == 403


def test_django_admin__needs_a_staff_login(client, data):
    response = client.get(reverse("admin:tenancy_app_changelist"))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


# --- SPEC §9: the Django admin never corrupts counters; deleting a token or a device there revokes at once.

def counted_models():
    from apps.chat.models import Conversation, Group, Membership
    from apps.events.models import Event
    from apps.receipts.models import GroupAck, ReceiptDailyCount

    return [Message, GroupAck, Membership, Conversation, App, ChatUser, Group, ReceiptDailyCount, Event]


@pytest.fixture
def acked(data):
    """bob's read ack of alice's group message: a GroupAck row and a daily count."""
    from apps.receipts.services import group_ack_record

    message = Message.objects.get(chat_type="group")
    bob = ChatUser.objects.get(username="bob")
    _, _, _, device = user_token_issue(app=data, username="bob", password="bob-password")
    group_ack_record(app=data, reader=bob, device=device, group_id=message.group.group_id,
                     message_id=message.message_id)


def test_django_admin__rows_behind_counters__delete_view_403_and_nothing_deleted(admin_client, acked):
    for model in counted_models():
        meta = model._meta
        row = model.objects.first()
        assert row is not None, meta.label  # the fixture made one of each
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_delete", args=[row.pk])
        assert admin_client.get(url).status_code == 403, meta.label
        assert admin_client.post(url, {"post": "yes"}).status_code == 403, meta.label
        assert model.objects.filter(pk=row.pk).exists(), meta.label


def test_django_admin__rows_behind_counters__no_delete_action_and_a_forged_one_deletes_nothing(admin_client, acked):
    for model in counted_models():
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        page = admin_client.get(url)
        assert page.status_code == 200 and b"delete_selected" not in page.content, meta.label
        before = model.objects.count()
        pks = [str(pk) for pk in model.objects.values_list("pk", flat=True)]
        admin_client.post(url, {"action": "delete_selected", "_selected_action": pks, "post": "yes"})
        assert model.objects.count() == before, meta.label


def test_django_admin__rows_behind_counters__no_add_or_change(admin_client, acked):
    for model in counted_models():
        meta = model._meta
        change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[model.objects.first().pk])
        assert admin_client.post(change, {}).status_code == 403, meta.label
        assert admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add")).status_code == 403


def _bearer(token):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_django_admin__access_token_deleted_there__its_cached_token_401_at_once(admin_client, data):
    token, *_ = user_token_issue(app=data, username="bob", password="bob-password", device_id="laptop")
    client = _bearer(token)
    conversations = f"/api/v1/{data.org_name}/{data.app_name}/conversations"
    assert client.get(conversations).status_code == 200  # cached from here on
    row = AccessToken.objects.get(device__device_id="laptop")
    response = admin_client.post(reverse("admin:chat_accesstoken_delete", args=[row.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not AccessToken.objects.filter(pk=row.pk).exists()
    assert client.get(conversations).status_code == 401


def test_django_admin__device_sessions_deleted_with_the_bulk_action__their_tokens_401_at_once(admin_client, data):
    from apps.chat.models import DeviceSession

    token, *_ = user_token_issue(app=data, username="bob", password="bob-password", device_id="laptop")
    client = _bearer(token)
    conversations = f"/api/v1/{data.org_name}/{data.app_name}/conversations"
    assert client.get(conversations).status_code == 200
    changelist = reverse("admin:chat_devicesession_changelist")
    assert b"delete_selected" in admin_client.get(changelist).content
    pks = [str(pk) for pk in DeviceSession.objects.filter(user__username="bob").values_list("pk", flat=True)]
    response = admin_client.post(changelist, {"action": "delete_selected", "_selected_action": pks, "post": "yes"})
    assert response.status_code == 302
    assert not DeviceSession.objects.filter(user__username="bob").exists()
    assert client.get(conversations).status_code == 401
    assert ChatUser.objects.filter(username="bob").exists()  # the user stays; only the devices logged out


def test_django_admin__staff_token_deleted_there__401_at_once(admin_client, data):
    token, _ = staff_token_issue(username="root", password="root-password")
    client = _bearer(token)
    assert client.get("/api/v1/admin/apps").status_code == 200
    row = StaffToken.objects.order_by("-id").first()
    response = admin_client.post(reverse("admin:tenancy_stafftoken_delete", args=[row.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert client.get("/api/v1/admin/apps").status_code == 401
