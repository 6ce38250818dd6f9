"""Reads of webhook endpoints and deliveries; an endpoint of another app is simply not found (SPEC §3)."""

from __future__ import annotations

from apps.common.exceptions import InvalidRequest, NotFound
from apps.common.pagination import keyset_page

from .models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

_MAX_ID = 2**63 - 1  # a larger path id matches no row (and PostgreSQL would refuse it as a bigint)


def endpoint_get(*, app, endpoint_id: int) -> WebhookEndpoint:
    """The app's endpoint `endpoint_id`, or 404 not_found."""
    endpoint = WebhookEndpoint.objects.filter(app=app, pk=endpoint_id).first() if endpoint_id <= _MAX_ID else None
    if endpoint is None:
        raise NotFound(f"No webhook endpoint {endpoint_id} in this app.")
    endpoint.app = app  # the caller's row: no second query for it
    return endpoint


def endpoint_list(*, app, cursor: str | None, limit: int):
    """A page of the app's endpoints, oldest first, and the next cursor."""
    return keyset_page(WebhookEndpoint.objects.filter(app=app), cursor=cursor, limit=limit)


def delivery_get(*, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    """The endpoint's delivery `delivery_id`, or 404 not_found."""
    delivery = (
        WebhookDelivery.objects.filter(endpoint=endpoint, pk=delivery_id).first() if delivery_id <= _MAX_ID else None
    )
    if delivery is None:
        raise NotFound(f"No delivery {delivery_id} of this webhook endpoint.")
    return delivery


def delivery_list(*, endpoint: WebhookEndpoint, status: str | None, cursor: str | None, limit: int):
    """A page of the endpoint's deliveries, newest first, optionally of one status; 400 for an unknown status."""
    queryset = WebhookDelivery.objects.filter(endpoint=endpoint).defer("body")
    if status is not None:
        if status not in DeliveryStatus.values:
            raise InvalidRequest(
                "Unknown delivery status.", fields={"status": [f"Must be one of: {', '.join(DeliveryStatus.values)}."]}
            )
        queryset = queryset.filter(status=status)
    return keyset_page(queryset, cursor=cursor, limit=limit, descending=True)


def deliveries_newest_per_endpoint(*, endpoints, limit: int) -> dict[int, list[WebhookDelivery]]:
    """The `limit` newest deliveries of each of `endpoints` (one app's: at most ENDPOINTS_PER_APP), newest first,
    by endpoint id, in ONE query whatever the number of endpoints and of their deliveries; none for no endpoint.

    Each endpoint is one arm `... WHERE endpoint_id = x ORDER BY id DESC LIMIT n` (an index range of
    webhook_delivery_newest that stops after n rows), the arms put together with UNION ALL: it reads at most
    endpoints x n rows. A window function (ROW_NUMBER() OVER (PARTITION BY endpoint_id ...) <= n) would read every
    delivery the endpoints ever had. The arms are compiled by the ORM (Django itself refuses a sliced arm in a
    union on SQLite), each wrapped as `SELECT * FROM (...)`, which both engines accept.
    """
    endpoints = list(endpoints)
    if not endpoints:
        return {}
    arms, params = [], []
    for index, endpoint in enumerate(endpoints):
        arm = WebhookDelivery.objects.filter(endpoint_id=endpoint.pk).defer("body").order_by("-id")[:limit]
        sql, arm_params = arm.query.get_compiler(using=arm.db).as_sql()
        arms.append(f"SELECT * FROM ({sql}) AS newest_{index}")
        params.extend(arm_params)
    by_endpoint = {endpoint.pk: endpoint for endpoint in endpoints}
    newest: dict[int, list[WebhookDelivery]] = {endpoint.pk: [] for endpoint in endpoints}
    for delivery in WebhookDelivery.objects.raw(" UNION ALL ".join(arms), params):
        delivery.endpoint = by_endpoint[delivery.endpoint_id]  # the caller's row: no query for it
        newest[delivery.endpoint_id].append(delivery)
    for rows in newest.values():
        rows.sort(key=lambda delivery: delivery.pk, reverse=True)  # UNION ALL promises no order
    return newest
