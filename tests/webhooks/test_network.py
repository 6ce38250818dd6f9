"""The SSRF guard's rules (SPEC §10 "Safety"): which URLs and addresses a webhook may reach, and that a post connects
to the address that was checked. DNS answers this machine cannot produce (a name with a public and a private
address) come from a stand-in resolver passed to target_of."""

import ipaddress
import socket

import pytest

from apps.webhooks import transport
from apps.webhooks.network import AddressRefused, Target, is_public, target_of, url_form_problem


def resolver(*addresses):
    def resolve(host, port, type):
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, type, 6, "", (a, port)) for a in addresses]

    return resolve


@pytest.mark.parametrize(
    "address,public",
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.0.0.1", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("ff02::1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.1", False),  # documentation
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
    ],
)
def test_is_public(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


def test_target__every_address_checked__one_private_among_public_refused():
    with pytest.raises(AddressRefused, match="10.0.0.7"):
        target_of("https://rebind.example/hook", allow_private=False, resolve=resolver("93.184.216.34", "10.0.0.7"))


def test_target__public_addresses__connects_to_the_first_checked_one():
    target = target_of(
        "https://crm.example:8443/in?x=1", allow_private=False, resolve=resolver("93.184.216.34", "93.184.216.35")
    )
    assert target == Target(scheme="https", host="crm.example", port=8443, path="/in?x=1", address="93.184.216.34")


def test_target__private_networks_allowed__nothing_resolved():
    def fail(*args, **kwargs):
        raise AssertionError("resolved")

    target = target_of("http://localhost/hook", allow_private=True, resolve=fail)
    assert (target.host, target.port, target.address) == ("localhost", 80, None)


def test_target__name_that_does_not_resolve__refused():
    with pytest.raises(AddressRefused, match="does not resolve"):
        target_of("https://receipts.invalid/", allow_private=False)


@pytest.mark.parametrize(
    "url,allow_http,ok",
    [
        ("https://crm.example/hook", False, True),
        ("https://crm.example", False, True),
        ("https://crm.example.:443/a/b?c=d&e=%20", False, True),
        ("http://crm.example/hook", False, False),
        ("http://crm.example/hook", True, True),
        ("HTTPS://crm.example/", False, False),
        ("https://crm.example:65536/", False, False),
        ("https://-crm.example/", False, False),
        ("https://crm_example.com/", False, False),
        ("https://[2606:2800::1]/", False, False),
        ("https://crm.example/a\nb", False, False),
        ("https://crm.example/é", False, False),
    ],
)
def test_url_form(url, allow_http, ok):
    assert (url_form_problem(url, allow_http=allow_http) is None) is ok


def test_post__connects_to_the_checked_address_with_the_names_host_header(receiver):
    # "receipts.invalid" resolves nowhere: the post can only have gone to the address it was given.
    target = Target(scheme="http", host="receipts.invalid", port=receiver.port, path="/in", address="127.0.0.1")
    outcome = transport.post(target=target, body=b"{}", headers={"content-type": "application/json"}, timeout=5)
    assert outcome.delivered
    (request,) = receiver.wait_for(1)
    assert request.headers["host"] == f"receipts.invalid:{receiver.port}"
    assert request.path == "/in"


def test_post__environment_proxy_ignored(receiver, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    target = Target(scheme="http", host="127.0.0.1", port=receiver.port, path="/hook", address="127.0.0.1")
    assert transport.post(target=target, body=b"{}", headers={}, timeout=5).delivered


def test_idle_sweep_lines__dropped__busy_and_failed_sweeps_and_other_tasks_kept():
    import logging

    from celery.app.trace import LOG_FAILURE, LOG_RECEIVED, LOG_SUCCESS

    from apps.webhooks.logs import IdleSweepFilter

    def record(fmt, **data):
        line = logging.LogRecord("celery.app.trace", logging.INFO, __file__, 1, fmt, (data,), None)
        line.data = data
        return line

    keep = IdleSweepFilter().filter
    sweep = {"name": "webhooks.deliver_due", "id": "x"}
    assert not keep(record(LOG_RECEIVED, **sweep))
    assert not keep(record(LOG_SUCCESS, **sweep, return_value="0", runtime=0.01))
    assert keep(record(LOG_SUCCESS, **sweep, return_value="3", runtime=0.2))
    assert keep(record(LOG_FAILURE, **sweep, exc="boom", description="raised", traceback=""))
    purge = {"name": "events.purge_expired_events", "id": "y"}
    assert keep(record(LOG_RECEIVED, **purge)) and keep(record(LOG_SUCCESS, **purge, return_value="0", runtime=1))
