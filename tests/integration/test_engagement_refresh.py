"""`gateway engagement refresh`: Apple's published egress list, downloaded (respx) and loaded."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx

from gateway.cli import main
from gateway.engagement import load_static_rules
from gateway.ops.engagement_refresh import PRIVATE_RELAY_URL

CSV = (
    "172.224.226.0/27,GB,GB-EN,London,\n"
    "172.224.226.32/31,GB,GB-EN,London,\n"
    "172.224.226.34/31,GB,GB-EN,London,\n"
    "not-a-range,XX,,,\n"
    "2a02:26f7:b3c0:4000::/64,US,US-CA,Los Angeles,\n"
)


def test_refresh_writes_collapsed_ranges_that_the_rules_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.get(PRIVATE_RELAY_URL).respond(200, text=CSV)
        assert main(["engagement", "refresh", "--data-dir", str(tmp_path)]) == 0
    stored = tmp_path / "engagement" / "icloud-private-relay-egress.txt"
    lines = [line for line in stored.read_text().splitlines() if not line.startswith("#")]
    assert lines == ["172.224.226.0/27", "172.224.226.32/30", "2a02:26f7:b3c0:4000::/64"]
    assert f"# source: {PRIVATE_RELAY_URL}" in stored.read_text()
    out = capsys.readouterr().out
    assert "4 published ranges" in out and "1 unreadable lines skipped" in out
    rules = load_static_rules(tmp_path)
    assert "172.224.226.35" in rules.apple
    assert "172.224.226.36" not in rules.apple
    assert "2a02:26f7:b3c0:4000::9" in rules.apple
    assert rules.flag("opened", {"geo_ip": "172.224.226.1"}) is not None


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(503), httpx.Response(200, text="nothing,here\n"), httpx.ConnectError("down")],
)
def test_a_failed_refresh_keeps_the_previous_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], answer: object
) -> None:
    stored = tmp_path / "engagement" / "icloud-private-relay-egress.txt"
    stored.parent.mkdir()
    stored.write_text("172.224.226.0/27\n")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get("https://mirror.example/egress.csv")
        if isinstance(answer, Exception):
            route.mock(side_effect=answer)
        else:
            route.mock(return_value=answer)
        code = main(
            [
                "engagement",
                "refresh",
                "--data-dir",
                str(tmp_path),
                "--url",
                "https://mirror.example/egress.csv",
            ]
        )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "nothing written" in err or "could not download" in err
    assert stored.read_text() == "172.224.226.0/27\n"
    assert list(stored.parent.iterdir()) == [stored]
