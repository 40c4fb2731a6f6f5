"""The command line offers what the core computes."""

from click.testing import CliRunner

from stream.cli import main


def test_kpis_accepts_every_window_of_the_core():
    help_text = CliRunner().invoke(main, ["kpis", "--help"]).output
    for window in ("1h", "24h", "today", "week", "month", "quarter", "all"):
        assert window in help_text
    # A window the core does not have is refused before any request is made.
    result = CliRunner().invoke(main, ["kpis", "--window", "fortnight"])
    assert result.exit_code == 2 and "fortnight" in result.output
