"""Standard Webhooks signing (the specification's own test vector), the URL guard, and the
backoff."""

from __future__ import annotations

import pytest

from domain.errors import InvalidRequest
from domain.webhooks import WebhookPolicy, backoff_s, sign, validate_target


def test_the_standard_webhooks_test_vector():
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://0.0.0.0/",
        "http://[::7f00:1]/",  # IPv4-compatible 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "http://[2002:a9fe:a9fe::]/",  # 6to4 of the same
    ],
)
def test_private_addresses_are_refused_unless_allowed(url):
    with pytest.raises(InvalidRequest, match="ALLOW_PRIVATE"):
        validate_target(url, ("run.finished",), allow_private=False)
    validate_target(url, ("run.finished",), allow_private=True)


def test_urls_and_events_are_checked():
    validate_target("https://hooks.example.com/x", ("run.started",), allow_private=False)
    for url in ("ftp://example.com/", "https:///nohost", "example.com"):
        with pytest.raises(InvalidRequest, match="url"):
            validate_target(url, ("run.started",), allow_private=False)
    with pytest.raises(InvalidRequest, match="events"):
        validate_target("https://example.com/", ("run.exploded",), allow_private=False)


def test_the_backoff_doubles_with_jitter_and_is_capped():
    policy = WebhookPolicy(first_backoff_s=5, max_backoff_s=60)
    assert [backoff_s(n, policy, lambda: 0.5) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]
    assert backoff_s(2, policy, lambda: 0.0) == 5 and backoff_s(2, policy, lambda: 1.0) == 15
