"""The API keys file: hashes, names, roles and options, read from a real file."""

from __future__ import annotations

from pathlib import Path

from service.core.api_keys import ApiKeys, key_hash, new_key


def test_a_line_gives_the_callers_name_role_and_options(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(
        f"{key_hash('alpha')} team alpha\n"
        f"{key_hash('ops')} release-bot role=admin  # rolls out models\n"
        f"{key_hash('quota')} partner rps=5 ips=40\n"
        f"{key_hash('odd')} someone role=root\n"
        f"{key_hash('anon')}\n"
    )
    keys = ApiKeys(path)
    alpha, ops, partner, anonymous = (keys.identify(key) for key in ("alpha", "ops", "quota", "anon"))
    assert alpha is not None and (alpha.name, alpha.role, dict(alpha.options)) == ("team alpha", "predict", {})
    assert ops is not None and ops.is_admin and ops.name == "release-bot"
    assert partner is not None and dict(partner.options) == {"rps": "5", "ips": "40"} and not partner.is_admin
    assert anonymous is not None and anonymous.name == "line 5"
    assert keys.identify("odd") is None, "an unknown role lets nobody in"
    assert keys.identify("nobody") is None


def test_a_new_admin_key_lets_its_holder_in_as_admin(tmp_path: Path) -> None:
    key, line = new_key("deployer", "admin")
    predict_key, predict_line = new_key("client")
    path = tmp_path / "keys"
    path.write_text(f"{line}\n{predict_line}\n")
    keys = ApiKeys(path)
    admin, client = keys.identify(key), keys.identify(predict_key)
    assert admin is not None and admin.is_admin and admin.name == "deployer"
    assert client is not None and client.role == "predict"
