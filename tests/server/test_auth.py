from __future__ import annotations

import logging

import pytest

from xrserver.auth import AuthError, TokenAuth


def test_generated_tokens_map_to_roles_and_permissions() -> None:
    auth = TokenAuth.generate()
    op = auth.token_for("operator")
    assert auth.authenticate(op).role == "operator"
    assert auth.require(op, "feedback").role == "operator"
    with pytest.raises(AuthError, match="operator may not configure") as exc:
        auth.require(op, "configure")
    assert op not in str(exc.value)
    assert auth.require(auth.token_for("admin"), "configure").role == "admin"
    with pytest.raises(AuthError, match="may not view"):
        auth.require(auth.token_for("camera"), "view")
    with pytest.raises(AuthError, match="missing"):
        auth.authenticate(None)
    with pytest.raises(AuthError, match="unknown token"):
        auth.authenticate(op + "x")
    assert TokenAuth.generate().token_for("operator") != op


def test_configured_tokens_are_validated() -> None:
    with pytest.raises(ValueError, match="shorter"):
        TokenAuth({"operator": ["short"]})
    with pytest.raises(ValueError, match="more than one role"):
        TokenAuth({"operator": ["a" * 20], "admin": ["a" * 20]})
    with pytest.raises(ValueError, match="unknown role"):
        TokenAuth({"root": ["a" * 20]})  # type: ignore[dict-item]


def test_tokens_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    auth = TokenAuth.generate()
    log = logging.getLogger("xr.test.redact")
    log.addFilter(auth.redactor())
    tok = auth.token_for("supervisor")
    with caplog.at_level(logging.INFO, logger="xr.test.redact"):
        log.info("GET /ws?token=%s from %s", tok, "127.0.0.1")
        log.info("header Authorization: Bearer %s", tok)
        log.info("GET /?token=someone-elses-guess&x=1")
    text = caplog.text
    assert tok not in text and "someone-elses-guess" not in text
    assert text.count("***") == 3
