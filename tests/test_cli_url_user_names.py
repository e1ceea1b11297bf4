"""``--sql-url`` and ``--redis-url`` with a user name alone are taken as
arguments (peer or certificate authentication); a password anywhere in
them is still refused, ps showing every argument to every user.

A query value may hold '@' (a generated password, an Azure-style user name
``app@server``): the part before the URL's last '@' is then no user name.
"""

from __future__ import annotations

import pytest

from wsgisession.cli import main
from wsgisession.redaction import holds_secret


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of ``wsgisession argv`` run in-process."""
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's exits
        status = int(exc.code or 0)
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    "option, url",
    [
        ("--sql-url", "postgresql://127.0.0.1/app?user=app@srv&password=hunter2"),
        ("--sql-url", "postgresql://127.0.0.1/app?password=hun@ter2"),
        ("--redis-url", "redis://127.0.0.1/0?password=hun@ter2"),
        ("--redis-url", "redis://app@127.0.0.1/0?password=hun@ter2"),
    ],
)
def test_a_password_in_a_query_holding_an_at_sign_is_refused_as_an_argument(
    option: str, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text before the last '@' was taken for a user name: the URL
    passed as one without a password, and the password went into ps."""
    assert holds_secret(url)
    store = "sql" if option == "--sql-url" else "redis"
    status, err = run(capsys, ["check", "--store", store, option, url])
    assert status == 1
    assert "with a password is refused" in err, err
    assert "hunter2" not in err and "hun@ter2" not in err


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app@127.0.0.1:1/app",
        "postgresql://db/app?user=app@srv",
        "redis://app@127.0.0.1:1/0",
    ],
)
def test_a_user_name_alone_holds_no_secret(url: str) -> None:
    assert not holds_secret(url)
