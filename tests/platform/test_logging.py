from __future__ import annotations

import json
import logging

import pytest
from loguru import logger

from cathouse.platform.context import request_id_var, service_var
from cathouse.platform.logging import configure_logging


def test_every_line_is_one_json_object_with_request_id_and_service(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    service_token = service_var.set("catalog")
    request_token = request_id_var.set("req-42")
    try:
        logger.info("cat published", slug="points")
        logging.getLogger("some.library").warning("from the standard library")
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            logger.exception("it failed")
    finally:
        request_id_var.reset(request_token)
        service_var.reset(service_token)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [entry["message"] for entry in lines] == ["cat published", "from the standard library", "it failed"]
    assert all(entry["request_id"] == "req-42" and entry["service"] == "catalog" for entry in lines)
    assert lines[0]["slug"] == "points"
    assert lines[1]["level"] == "WARNING"
    assert "ValueError" in lines[2]["traceback"]


def test_secret_looking_fields_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    logger.info("login", password="hunter2", access_token="eyJ.secret", api_key="ck_live_x", user="ana")
    entry = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert entry["user"] == "ana"
    assert entry["password"] == entry["access_token"] == entry["api_key"] == "[redacted]"
    assert "hunter2" not in json.dumps(entry)
