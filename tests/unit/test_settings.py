"""The environment variables of issue 13: body limits per provider, the connection cap."""

from __future__ import annotations

import pytest

from gateway.settings import Settings, SettingsError

MIB = 1024 * 1024


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.max_connections == 1000
    assert settings.phantombuster_fetch_deadline_s == 30
    assert [settings.body_limit(p) for p in ("lemlist", "postmark", "phantombuster")] == [
        MIB,
        MIB,
        16 * MIB,
    ]


def test_per_provider_body_limits_override_the_general_one() -> None:
    settings = Settings.from_env(
        {
            "GATEWAY_MAX_BODY_BYTES": str(32 * MIB),
            "GATEWAY_MAX_BODY_BYTES_LEMLIST": "1000",
            "GATEWAY_MAX_CONNECTIONS": "50",
        }
    )
    assert settings.body_limit("lemlist") == 1000
    assert settings.body_limit("postmark") == 32 * MIB
    assert settings.body_limit("phantombuster") == 32 * MIB  # never below the general limit
    assert settings.max_connections == 50
    own = Settings.from_env({"GATEWAY_MAX_BODY_BYTES_PHANTOMBUSTER": "2048"})
    assert own.body_limit("phantombuster") == 2048


@pytest.mark.parametrize(
    "name",
    [
        "GATEWAY_MAX_BODY_BYTES_LEMLIST",
        "GATEWAY_MAX_BODY_BYTES_POSTMARK",
        "GATEWAY_MAX_BODY_BYTES_PHANTOMBUSTER",
        "GATEWAY_MAX_CONNECTIONS",
    ],
)
@pytest.mark.parametrize("value", ["0", "-5", "many", "1.5"])
def test_bad_values_name_their_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
