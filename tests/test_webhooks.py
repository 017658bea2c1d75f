"""Signed webhooks: the reference library's known answers, then what a verifying cat sees."""

from __future__ import annotations

import base64
import time

import pytest

from cathouse import webhooks
from cathouse.webhooks import WebhookVerificationError

# The known answer of standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py
# (test_sign_function), the vector Svix and other Standard Webhooks implementations also test against.
REF_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REF_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
REF_TIMESTAMP = 1614265330
REF_BODY = b'{"test": 2432232314}'
REF_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
# That file's test_invalid_signature_raises_error: the right one with its last byte changed.
REF_NEAR_MISS = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="
# That file's test_multi_sig_payload_is_valid: decoys around the valid signature.
REF_DECOY = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="


def ref_headers(**overrides: str) -> dict[str, str]:
    found = {"webhook-id": REF_ID, "webhook-timestamp": str(REF_TIMESTAMP), "webhook-signature": REF_SIGNATURE}
    return found | overrides


def test_sign_gives_the_reference_signature() -> None:
    assert webhooks.sign(REF_SECRET, REF_ID, REF_TIMESTAMP, REF_BODY) == REF_SIGNATURE


def test_headers_give_the_reference_headers() -> None:
    assert webhooks.headers([REF_SECRET], REF_ID, REF_TIMESTAMP, REF_BODY) == ref_headers()


def test_the_reference_delivery_verifies_whatever_the_header_case() -> None:
    webhooks.verify(REF_SECRET, ref_headers(), REF_BODY, now=REF_TIMESTAMP)
    shouted = {name.title(): value for name, value in ref_headers().items()}
    webhooks.verify(REF_SECRET, shouted, REF_BODY, now=REF_TIMESTAMP)


def test_a_secret_without_prefix_or_padding_is_the_same_key() -> None:
    assert webhooks.sign(REF_SECRET.removeprefix("whsec_"), REF_ID, REF_TIMESTAMP, REF_BODY) == REF_SIGNATURE
    padded = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    assert padded.endswith("=")
    unpadded = padded.rstrip("=").removeprefix("whsec_")
    assert webhooks.sign(unpadded, "msg_1", 1, b"{}") == webhooks.sign(padded, "msg_1", 1, b"{}")


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!", "   "])
def test_a_secret_that_is_not_base64_is_a_configuration_error(secret: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        webhooks.sign(secret, REF_ID, REF_TIMESTAMP, REF_BODY)
    with pytest.raises(ValueError, match="webhook secret"):
        webhooks.verify(secret, ref_headers(), REF_BODY, now=REF_TIMESTAMP)


def test_generated_secrets_are_fresh_and_round_trip_on_the_real_clock() -> None:
    first, second = webhooks.generate_secret(), webhooks.generate_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert 24 <= len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) <= 32
    body = b'{"type": "installation.created"}'
    webhooks.verify(first, webhooks.headers([first], "msg_1", int(time.time()), body), body)


@pytest.mark.parametrize(
    "tampered",
    [
        {"body": b'{"test": 2432232315}'},
        {"body": REF_BODY + b" "},
        {"headers": ref_headers(**{"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJel"})},
        {"headers": ref_headers(**{"webhook-signature": REF_NEAR_MISS})},
        {"secret": "whsec_" + base64.b64encode(b"another cat's secret....").decode()},
    ],
    ids=["body", "trailing-space", "id", "near-miss-signature", "wrong-secret"],
)
def test_anything_tampered_is_refused(tampered: dict[str, object]) -> None:
    body = tampered.get("body", REF_BODY)
    found = tampered.get("headers", ref_headers())
    secret = tampered.get("secret", REF_SECRET)
    assert isinstance(body, bytes)
    assert isinstance(found, dict)
    assert isinstance(secret, str)
    with pytest.raises(WebhookVerificationError, match="no matching"):
        webhooks.verify(secret, found, body, now=REF_TIMESTAMP)


@pytest.mark.parametrize(("offset", "error"), [(-360, "too old"), (360, "too new"), (-301, "too old")])
def test_a_stale_or_future_timestamp_is_refused(offset: int, error: str) -> None:
    with pytest.raises(WebhookVerificationError, match=error):
        webhooks.verify(REF_SECRET, ref_headers(), REF_BODY, now=REF_TIMESTAMP - offset)


@pytest.mark.parametrize("offset", [-300, -240, 240, 300])
def test_a_timestamp_within_five_minutes_is_accepted(offset: int) -> None:
    webhooks.verify(REF_SECRET, ref_headers(), REF_BODY, now=REF_TIMESTAMP - offset)


def test_any_v1_signature_may_match_and_other_versions_are_ignored() -> None:
    second_matches = f"v1,{REF_DECOY} {REF_SIGNATURE}"
    webhooks.verify(REF_SECRET, ref_headers(**{"webhook-signature": second_matches}), REF_BODY, now=REF_TIMESTAMP)
    reference_list = f"v1,{REF_DECOY} v2,{REF_DECOY} {REF_SIGNATURE} v1,{REF_DECOY}"
    webhooks.verify(REF_SECRET, ref_headers(**{"webhook-signature": reference_list}), REF_BODY, now=REF_TIMESTAMP)
    # The right MAC under another version's label is not a v1 signature.
    relabelled = REF_SIGNATURE.replace("v1,", "v1a,")
    with pytest.raises(WebhookVerificationError, match="no matching"):
        webhooks.verify(REF_SECRET, ref_headers(**{"webhook-signature": relabelled}), REF_BODY, now=REF_TIMESTAMP)


def test_a_rotation_overlap_is_accepted_by_either_side() -> None:
    old, new, stranger = webhooks.generate_secret(), webhooks.generate_secret(), webhooks.generate_secret()
    body = b'{"type": "installation.suspended"}'
    sent = webhooks.headers([old, new], "msg_rotation", REF_TIMESTAMP, body)
    assert sent["webhook-signature"] == " ".join(
        webhooks.sign(s, "msg_rotation", REF_TIMESTAMP, body) for s in (old, new)
    )
    for holding in ([new], [old], old, [stranger, new]):
        webhooks.verify(holding, sent, body, now=REF_TIMESTAMP)
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(stranger, sent, body, now=REF_TIMESTAMP)
    only_new = webhooks.headers([new], "msg_rotation", REF_TIMESTAMP, body)
    webhooks.verify([old, new], only_new, body, now=REF_TIMESTAMP)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_or_empty_header_is_refused(name: str) -> None:
    missing = {key: value for key, value in ref_headers().items() if key != name}
    for found in (missing, ref_headers(**{name: ""})):
        with pytest.raises(WebhookVerificationError, match="missing"):
            webhooks.verify(REF_SECRET, found, REF_BODY, now=REF_TIMESTAMP)


@pytest.mark.parametrize("timestamp", ["hello", "1614265330.0", "-1614265330", "1_614_265_330", "1614265330x"])
def test_a_timestamp_that_is_not_an_integer_is_refused(timestamp: str) -> None:
    found = ref_headers(**{"webhook-timestamp": timestamp})
    with pytest.raises(WebhookVerificationError, match="not an integer"):
        webhooks.verify(REF_SECRET, found, REF_BODY, now=REF_TIMESTAMP)


@pytest.mark.parametrize("signature", ["v1,not base64!!", "v1", "v1,", ",", "garbage", "v1,g0hM9SsE", "v1,a,b"])
def test_garbage_signatures_are_refused_not_crashed_on(signature: str) -> None:
    found = ref_headers(**{"webhook-signature": signature})
    with pytest.raises(WebhookVerificationError, match="no matching"):
        webhooks.verify(REF_SECRET, found, REF_BODY, now=REF_TIMESTAMP)
    # A garbage entry beside the right signature does not hide it.
    webhooks.verify(
        REF_SECRET, ref_headers(**{"webhook-signature": f"{signature} {REF_SIGNATURE}"}), REF_BODY, now=REF_TIMESTAMP
    )


@pytest.mark.parametrize("msg_id", ["", "msg.1"])
def test_the_sender_refuses_an_id_that_would_blur_the_signed_content(msg_id: str) -> None:
    with pytest.raises(ValueError, match="webhook id"):
        webhooks.headers([REF_SECRET], msg_id, REF_TIMESTAMP, REF_BODY)


def test_signing_or_verifying_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one"):
        webhooks.headers([], REF_ID, REF_TIMESTAMP, REF_BODY)
    with pytest.raises(ValueError, match="at least one"):
        webhooks.verify([], ref_headers(), REF_BODY, now=REF_TIMESTAMP)
