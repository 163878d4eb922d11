"""The `gateway` command's flags, errors and safety nets, as a user meets them (issue 14).

Every test runs the real command in a subprocess against real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from gateway.cli import build_parser
from tests.conftest import fixture_body
from tests.e2e.helpers import gateway_env, run_gateway

DOWN = "postgresql://someone:hunter2@127.0.0.1:9/nowhere"


@pytest.fixture
def migrated(create_migrated_database: Callable[[], str]) -> str:
    return create_migrated_database()


def _rows(url: str, query: str) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(query)
            return rows
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_database_flags_work_before_or_after_the_command(
    create_database: Callable[[], str], tmp_path: Path
) -> None:
    wanted, other = create_database(), create_database()
    env = gateway_env(DATABASE_URL=other, GATEWAY_DATA_DIR=str(tmp_path / "env-dir"))
    name = urlsplit(wanted).path.lstrip("/")
    for args in (
        ["--database-url", wanted, "db", "check"],
        ["db", "--database-url", wanted, "check"],
        ["db", "check", "--database-url", wanted],
    ):
        result = run_gateway(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert f"Database: {name}\n" in result.stdout, args

    for args in (["--data-dir", str(tmp_path / "d1"), "api-key"], ["api-key", "--data-dir"]):
        if args[-1] == "--data-dir":
            args = [*args, str(tmp_path / "d2")]
        result = run_gateway(*args, env=env)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "d1" / "api-key.json").exists()
    assert (tmp_path / "d2" / "api-key.json").exists()
    assert not (tmp_path / "env-dir").exists()  # the flag won over GATEWAY_DATA_DIR


COMMANDS = [
    ["serve"],
    ["migrate"],
    ["seed"],
    ["db", "check"],
    ["db", "stats"],
    ["urls"],
    ["api-key"],
    ["replay"],
    ["export"],
    ["reprocess"],
    ["purge"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_names_the_environment_variable_of_each_flag(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(env DATABASE_URL)" in text and "(env GATEWAY_DATA_DIR" in text
    if command == ["urls"]:
        assert "(env GATEWAY_BASE_URL" in text
    if command == ["purge"]:
        assert "s (seconds), min (minutes), h (hours), d (days), w (weeks)" in text


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--port", "0"],
        ["migrate"],
        ["seed"],
        ["db", "check"],
        ["db", "stats"],
        ["export"],
        ["reprocess"],
        ["purge", "--older-than", "90d", "--yes"],
        ["replay", "CAPTURE"],
    ],
    ids=" ".join,
)
def test_an_unreachable_database_is_one_error_line(command: list[str], tmp_path: Path) -> None:
    capture = tmp_path / "one.jsonl"
    capture.write_text('{"provider": "lemlist", "body": {}}\n')
    args = [str(capture) if a == "CAPTURE" else a for a in command]
    result = run_gateway(*args, env=gateway_env(DATABASE_URL=DOWN, GATEWAY_DATA_DIR=str(tmp_path)))
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        "error: cannot reach the database at postgresql://someone:***@127.0.0.1:9/nowhere: "
    )
    assert "hunter2" not in result.stderr + result.stdout
    assert result.stdout == ""  # no banner, no summary


def test_files_that_cannot_be_written_or_used_are_one_error_line(
    migrated: str, tmp_path: Path
) -> None:
    env = gateway_env(DATABASE_URL=migrated, GATEWAY_DATA_DIR=str(tmp_path / "data"))
    missing = tmp_path / "no-such-dir" / "out.jsonl"
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for args, message in [
        (["export", "-o", str(missing)], f"error: cannot write {missing}: No such file"),
        (
            ["purge", "--older-than", "0d", "--yes", "--archive", str(missing)],
            f"error: cannot write {missing}: No such file",
        ),
        (["urls", "--data-dir", str(a_file / "x")], f"under {a_file / 'x'}: Not a directory"),
        (["api-key", "--data-dir", str(a_file / "x")], f"under {a_file / 'x'}: Not a directory"),
    ]:
        if args[0] == "purge":  # something to delete, so that the archive is opened
            _seed_deliveries(env, tmp_path)
        result = run_gateway(*args, env=env)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    # The embedded PostgreSQL under a data directory that cannot exist.
    embedded = run_gateway("db", "check", "--data-dir", str(a_file / "x"), env=gateway_env())
    assert embedded.returncode == 1
    assert embedded.stderr == (
        f"error: cannot start the embedded PostgreSQL under {a_file / 'x'}: Not a directory\n"
    )


def _seed_deliveries(env: dict[str, str], tmp_path: Path) -> None:
    bodies = tmp_path / "lemlist"
    bodies.mkdir(exist_ok=True)
    (bodies / "sent.json").write_bytes(fixture_body("lemlist", "emailsSent.json"))
    assert run_gateway("replay", str(bodies), env=env).returncode == 0


def test_urls_says_where_its_base_url_comes_from(tmp_path: Path) -> None:
    env = gateway_env(GATEWAY_DATA_DIR=str(tmp_path), GATEWAY_SECRET_LEMLIST="s3")
    default = run_gateway("urls", env=env)
    assert "lemlist        http://127.0.0.1:8000/webhooks/lemlist?token=s3" in default.stdout
    assert default.stderr.startswith("base URL http://127.0.0.1:8000 (from gateway serve's")
    assert "set GATEWAY_BASE_URL" in default.stderr

    public = env | {"GATEWAY_BASE_URL": "https://hooks.example.com:8443/"}
    from_env = run_gateway("urls", env=public)
    assert "https://hooks.example.com:8443/webhooks/lemlist?token=s3" in from_env.stdout
    assert from_env.stderr == "base URL https://hooks.example.com:8443 (from GATEWAY_BASE_URL)\n"

    flag = run_gateway("urls", "--base-url", "http://10.0.0.5:9000", env=public)
    assert "http://10.0.0.5:9000/webhooks/lemlist?token=s3" in flag.stdout
    assert flag.stderr == "base URL http://10.0.0.5:9000 (from --base-url)\n"

    bad = run_gateway("urls", env=env | {"GATEWAY_BASE_URL": "hooks.example.com"})
    assert bad.returncode == 1
    assert bad.stderr == "error: GATEWAY_BASE_URL is not an http(s) URL: 'hooks.example.com'\n"


def test_serve_on_a_busy_port_says_so_before_any_banner(migrated: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = gateway_env(DATABASE_URL=migrated, GATEWAY_DATA_DIR=str(tmp_path))
        result = run_gateway("serve", "--port", str(port), env=env, timeout=30)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: port {port} on 127.0.0.1 is already in use (another gateway serve?);"
        " choose another with --port\n"
    )


def test_replay_reads_a_directory_of_provider_folders(migrated: str, tmp_path: Path) -> None:
    payloads = tmp_path / "payloads"
    for provider, name in [
        ("lemlist", "emailsSent.json"),
        ("lemlist", "emailsOpened.json"),
        ("postmark", "Delivery.json"),
        ("phantombuster", "linkedin_auto_connect_finished.json"),
    ]:
        (payloads / provider).mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(__file__).parents[1] / "fixtures" / provider / name, payloads / provider)
    env = gateway_env(DATABASE_URL=migrated, GATEWAY_DATA_DIR=str(tmp_path / "data"))

    clean = run_gateway("replay", str(payloads), env=env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "replayed 4 deliveries into the database" in clean.stdout
    providers = _rows(migrated, "SELECT provider, count(*) FROM webhook_deliveries GROUP BY 1")
    assert dict(providers) == {"lemlist": 2, "postmark": 1, "phantombuster": 1}

    # Unreadable lines and files are failures: counted, reported, exit 1.
    (payloads / "lemlist" / "broken.jsonl").write_text('{"provider": "lemlist"\nnot json\n')
    (payloads / "mailchimp").mkdir()
    (payloads / "mailchimp" / "x.json").write_text("{}")
    (payloads / "empty").mkdir()
    dirty = run_gateway("replay", str(payloads), str(tmp_path / "missing.jsonl"), env=env)
    assert dirty.returncode == 1
    invalid = [line for line in dirty.stderr.splitlines() if ": invalid: " in line]
    assert len(invalid) == 5, dirty.stderr  # 2 lines, 1 unknown folder, 1 empty, 1 missing
    assert f"{payloads / 'lemlist' / 'broken.jsonl'}:2: invalid:" in dirty.stderr
    assert f"{tmp_path / 'missing.jsonl'}: invalid: cannot read: No such file" in dirty.stderr
    assert "  invalid          5" in dirty.stdout


def test_purge_shows_what_it_deletes_and_asks(migrated: str, tmp_path: Path) -> None:
    env = gateway_env(DATABASE_URL=migrated, GATEWAY_DATA_DIR=str(tmp_path / "data"))
    _seed_deliveries(env, tmp_path)

    ambiguous = run_gateway("purge", "--older-than", "6m", "--yes", env=env)
    assert ambiguous.returncode == 2
    assert "'m' is ambiguous (minutes or months?): write 6min, or 180d" in ambiguous.stderr

    unasked = run_gateway("purge", "--older-than", "0d", env=env)  # stdin is not a terminal
    assert unasked.returncode == 1
    assert unasked.stdout.startswith("will delete 1 deliveries received before ")
    assert "events are kept" in unasked.stdout
    assert unasked.stderr == (
        "error: standard input is not a terminal to ask on: add --yes to delete\n"
    )
    assert _rows(migrated, "SELECT count(*) FROM webhook_deliveries")[0][0] == 1

    archive = tmp_path / "archive.jsonl"
    archive.write_text("")
    archive.chmod(0o644)
    done = run_gateway("purge", "--older-than", "0d", "--yes", "--archive", str(archive), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("deleted 1 deliveries received before ")
    assert _rows(migrated, "SELECT count(*) FROM webhook_deliveries")[0][0] == 0
    assert _rows(migrated, "SELECT count(*) FROM campaign_events")[0][0] == 1
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert json.loads(archive.read_text())["provider"] == "lemlist"


def test_exports_are_owner_only(migrated: str, tmp_path: Path) -> None:
    env = gateway_env(DATABASE_URL=migrated, GATEWAY_DATA_DIR=str(tmp_path / "data"))
    _seed_deliveries(env, tmp_path)
    new, existing = tmp_path / "new.jsonl", tmp_path / "existing.jsonl"
    existing.write_text("old")
    existing.chmod(0o644)
    for out in (new, existing):
        result = run_gateway("export", "-o", str(out), env=env)
        assert result.returncode == 0, result.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert json.loads(out.read_text())["provider"] == "lemlist"


def test_commands_log_only_what_a_user_needs(tmp_path: Path) -> None:
    """No `embedded_postgres.started` (or any other info line) on every command."""
    env = gateway_env(GATEWAY_DATA_DIR=str(tmp_path))
    result = run_gateway("db", "check", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("Database: ")
