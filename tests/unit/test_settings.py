"""Settings from the environment: issue 13's variables, and issue 16's one declaration each."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Literal, Union, get_args, get_origin

import msgspec
import pytest

import gateway.settings
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


# Issue 16: one declaration per setting, its variable derived from its name.

SETTINGS_SOURCE = Path(gateway.settings.__file__)
CONTRACT = Path(__file__).resolve().parents[3] / "shared" / "CONTRACT.md"
#: The variables the contract names otherwise than GATEWAY_<FIELD> (README: Configuration).
CONTRACT_NAMES = {
    "database_url": "DATABASE_URL",
    "api_keys": "GATEWAY_API_KEY",
    "phantombuster_api_key": "PHANTOMBUSTER_API_KEY",
    "phantombuster_api_base": "PHANTOMBUSTER_API_BASE",
    "phantombuster_result_hosts": "PHANTOMBUSTER_RESULT_HOSTS",
    "phantombuster_fetch_deadline_s": "PHANTOMBUSTER_FETCH_DEADLINE_S",
    "metrics_dir": "PROMETHEUS_MULTIPROC_DIR",
}
FIELDS = msgspec.structs.fields(Settings)


def test_every_field_has_a_docstring() -> None:
    [body] = [
        node.body
        for node in ast.parse(SETTINGS_SOURCE.read_text()).body
        if isinstance(node, ast.ClassDef) and node.name == "Settings"
    ]
    undocumented = [
        statement.target.id
        for statement, following in zip(body, [*body[1:], None], strict=True)
        if isinstance(statement, ast.AnnAssign)
        and isinstance(statement.target, ast.Name)
        and not (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        )
    ]
    assert undocumented == []
    assert len([s for s in body if isinstance(s, ast.AnnAssign)]) == len(FIELDS)


def test_each_variable_is_the_field_name_unless_the_contract_names_it() -> None:
    for field in FIELDS:
        expected = CONTRACT_NAMES.get(field.name, f"GATEWAY_{field.name.upper()}")
        assert (field.name, field.encode_name) == (field.name, expected)


def test_every_variable_of_the_contract_is_read() -> None:
    """Contract §2's table, with `…_X` read as the name before it with another ending."""
    section = CONTRACT.read_text().split("## 2.", 1)[1].split("\n## ", 1)[0]
    named: list[str] = []
    for row in section.splitlines()[4:]:
        for name in re.findall(r"`([A-Z_…]+)`", row.split("|")[1]):
            named.append(named[-1].rsplit("_", 1)[0] + name[1:] if name[0] == "…" else name)
    assert len(named) == 17
    assert set(named) <= {field.encode_name for field in FIELDS}


def _sample(type_: object) -> tuple[str, object]:
    """A value of the field's type as its variable spells it, and as the field holds it."""
    args = [a for a in get_args(type_) if a is not type(None)]
    if get_origin(type_) in (UnionType, Union):
        return _sample(args[0])
    if get_origin(type_) is Annotated:
        return _sample(args[0])
    if get_origin(type_) is Literal:
        return str(args[-1]), args[-1]
    if get_origin(type_) is tuple:
        return " a.example , b.example ,", ("a.example", "b.example")
    samples: dict[object, tuple[str, object]] = {
        bool: ("no", False),
        int: ("7", 7),
        float: ("2.5", 2.5),
        str: ("https://x.example", "https://x.example"),
        Path: ("/srv/x", Path("/srv/x")),
    }
    return samples[type_]


@pytest.mark.parametrize("field", FIELDS, ids=[f.name for f in FIELDS])
def test_every_field_is_read_from_its_variable(field: msgspec.structs.FieldInfo) -> None:
    text, value = _sample(field.type)
    assert value != field.default
    read = Settings.from_env({field.encode_name: text})
    assert getattr(read, field.name) == value
    assert read == msgspec.structs.replace(Settings(), **{field.name: value})


def test_an_empty_variable_is_unset() -> None:
    assert Settings.from_env({field.encode_name: "  " for field in FIELDS}) == Settings()
