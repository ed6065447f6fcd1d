"""Bedrock narratives through botocore's Stubber: request shape, redaction, fallback, breaker."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from app.explain import CircuitBreaker, Explainer, redact, template_narrative

REASONS = [{"feature": "card_count_1h", "value": 14.0, "impact": 0.31},
           {"feature": "ip_card_country_mismatch", "value": 1.0, "impact": 0.12}]


def _client():  # noqa: ANN202 - boto3 client types are generated
    return boto3.client("bedrock-runtime", region_name="eu-west-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def test_redaction_keeps_only_feature_band_and_impact() -> None:
    codes = redact(REASONS)
    assert [(c.feature, c.band, c.impact) for c in codes] == [("card_count_1h", "high", 0.31),
                                                             ("ip_card_country_mismatch", "medium", 0.12)]


def test_bedrock_converse_request_and_answer() -> None:
    client = _client()
    explainer = Explainer(model_id="anthropic.claude-test", client=client)
    expected = {
        "modelId": "anthropic.claude-test",
        "system": [{"text": explainer_system()}],
        "messages": [{"role": "user", "content": [{"text":
            "Fraud score band: review. Reason codes (feature, value band, impact on score):\n"
            "- card_count_1h: high, +0.31\n- ip_card_country_mismatch: medium, +0.12"}]}],
        "inferenceConfig": {"maxTokens": 200, "temperature": 0.2},
    }
    answer = {"output": {"message": {"role": "assistant", "content": [{"text": "Many card uses in the last hour."}]}},
              "stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
              "metrics": {"latencyMs": 5}}
    with Stubber(client) as stub:
        stub.add_response("converse", answer, expected)
        assert explainer.narrative(REASONS, 0.72) == ("Many card uses in the last hour.", "bedrock")
        stub.assert_no_pending_responses()


def explainer_system() -> str:
    from app.explain import _SYSTEM

    return _SYSTEM


def test_failures_fall_back_to_template_and_open_the_breaker() -> None:
    client = _client()
    explainer = Explainer(model_id="m", client=client, breaker=CircuitBreaker(threshold=2, cooldown=60))
    template = template_narrative(redact(REASONS), 0.72)
    with Stubber(client) as stub:
        stub.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
        stub.add_client_error("converse", service_error_code="ModelTimeoutException", http_status_code=408)
        assert explainer.narrative(REASONS, 0.72) == (template, "template")
        assert explainer.narrative(REASONS, 0.72) == (template, "template")
        assert explainer.breaker.state == "open"
        # Open: no call goes out (the Stubber would raise on an unexpected call).
        assert explainer.narrative(REASONS, 0.72) == (template, "template")
        stub.assert_no_pending_responses()


def test_template_without_bedrock() -> None:
    text, source = Explainer().narrative(REASONS, 0.7)
    assert source == "template"
    assert text.startswith("Score 0.70 is in the review band.") and "card count 1h (high, +0.31)" in text


def test_breaker_half_opens_after_cooldown() -> None:
    breaker = CircuitBreaker(threshold=1, cooldown=0.0)
    breaker.failure()
    assert breaker.state == "half-open" and breaker.allow()
    breaker.success()
    assert breaker.state == "closed"
