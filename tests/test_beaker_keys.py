"""Beaker's session keys: refused everywhere, each with the right hint.

A key left over from Beaker must stop startup with a ConfigError saying what
to write instead, whether it sits in a Paste filter section, in Paste's
``[DEFAULT]`` globals, in Pyramid settings (where keys without the
``wsgisession.`` prefix are otherwise ignored) or in a file checked by
``wsgisession check``; never be skipped without a word.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wsgisession import _beaker
from wsgisession.cli import main
from wsgisession.config import describe_options, parse_settings
from wsgisession.errors import ConfigError
from wsgisession.paste import filter_app_factory, make_middleware

#: What each Beaker key must point to (None: no option, only a note).
EXPECTED = {
    "type": "store",
    "data_dir": "file_path",
    "key": "cookie_name",
    "validate_key": "secret_key",
    "encrypt_key": "encrypt",
    "timeout": "cookie_age",
    "secure": "cookie_secure",
    "httponly": "cookie_httponly",
    "samesite": "cookie_samesite",
    "cookie_domain": "cookie_domain",
    "cookie_path": "cookie_path",
    "data_serializer": "serializer",
    "lock_dir": None,
    "secret": None,
    "auto": None,
    "cookie_expires": None,
    "save_accessed_time": None,
    "invalidate_corrupt": None,
    "crypto_type": None,
}


def hello(environ: object, start_response: object) -> list[bytes]:
    return []


def refusal(settings: dict[str, str], prefix: str = "", **kw: object) -> str:
    with pytest.raises(ConfigError) as info:
        parse_settings(settings, prefix, **kw)  # type: ignore[arg-type]
    return str(info.value)


@pytest.mark.parametrize("name", sorted(_beaker.BEAKER_KEYS))
@pytest.mark.parametrize("beaker_prefix", _beaker.PREFIXES)
def test_every_beaker_key_is_refused_in_a_filter_section(
    name: str, beaker_prefix: str
) -> None:
    key = beaker_prefix + name
    message = refusal({"store": "memory", key: "x"})
    assert repr(key) in message and f"Beaker's {name!r}" in message
    option = _beaker.BEAKER_KEYS[name].option
    if option is None:
        assert "did you mean" not in message
    else:
        assert f"did you mean {option!r}?" in message


@pytest.mark.parametrize("name", sorted(_beaker.BEAKER_KEYS))
def test_every_beaker_key_is_refused_in_pyramid_settings(name: str) -> None:
    key = "beaker.session." + name
    with pytest.raises(ConfigError) as info:
        make_middleware(hello, {"wsgisession.store": "memory", key: "x"})
    message = str(info.value)
    assert repr(key) in message
    option = _beaker.BEAKER_KEYS[name].option
    if option is not None:
        assert f"did you mean {'wsgisession.' + option!r}?" in message


def test_hints_name_real_options() -> None:
    schema = {info.name for info in describe_options()}
    for name, entry in _beaker.BEAKER_KEYS.items():
        assert entry.option is None or entry.option in schema, name
    for name, option in EXPECTED.items():
        assert _beaker.BEAKER_KEYS[name].option == option, name


def test_the_hints_the_issue_found_wrong() -> None:
    assert "did you mean 'cookie_name'?" in refusal({"session.key": "sid"})
    assert "environ_key" not in refusal({"session.key": "sid"})
    encrypt = refusal({"session.encrypt_key": "k"})
    assert "did you mean 'encrypt'?" in encrypt and "secret_key'?" not in encrypt
    assert "locks" in refusal({"session.lock_dir": "/tmp/lock"})


def test_auto_explains_the_cost_of_save_every_request() -> None:
    message = refusal({"session.auto": "true"})
    assert "reissue_time" in message
    assert "a store read and write each time" in message


def test_bare_and_deprecated_beaker_names_get_the_hint() -> None:
    assert "did you mean 'cookie_age'?" in refusal({"timeout": "60"})
    assert "did you mean 'cookie_age'?" in refusal({"session_timeout": "60"})
    assert "did you mean 'cookie_name'?" in refusal({"key": "sid"})


def test_pyramid_secure_is_refused_not_ignored() -> None:
    settings = {"wsgisession.store": "memory", "beaker.session.secure": "true"}
    with pytest.raises(ConfigError, match="'wsgisession.cookie_secure'"):
        make_middleware(hello, settings)
    settings["session.secure"] = settings.pop("beaker.session.secure")
    with pytest.raises(ConfigError, match="'session.secure' is a Beaker"):
        make_middleware(hello, settings)


def test_other_settings_of_a_pyramid_app_are_still_ignored() -> None:
    middleware = make_middleware(
        hello,
        {
            "wsgisession.store": "memory",
            "pyramid.reload_templates": "true",
            "session.my_own_thing": "x",
            "beaker.cache.type": "memory",
        },
    )
    assert middleware.settings.cookie_secure is False


def test_beaker_keys_in_paste_globals_are_refused() -> None:
    with pytest.raises(ConfigError, match="'beaker.session.secure' is a Beaker"):
        filter_app_factory(
            hello, {"here": "/", "beaker.session.secure": "true"}, store="memory"
        )


def test_wsgisession_check_reports_beaker_keys_of_an_app_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = tmp_path / "app.ini"
    ini.write_text(
        textwrap.dedent(
            """\
            [app:main]
            use = egg:myapp
            wsgisession.store = memory
            beaker.session.httponly = true
            """
        )
    )
    assert main(["check", "--config", f"{ini}#main"]) == 1
    err = capsys.readouterr().err
    assert "'beaker.session.httponly' is a Beaker session key" in err
    assert "did you mean 'wsgisession.cookie_httponly'?" in err


# -- Beaker's Python idiom: SessionMiddleware(app, config) ----------------------

#: A Beaker configuration dict as Beaker's docs pass it, with its secrets.
BEAKER_CONFIG = {
    "session.type": "ext:database",
    "session.url": "postgresql://app:hunter2@db/app",
    "session.validate_key": "beaker-validate-key-do-not-show",
}


def test_beaker_config_dict_as_the_store_is_refused_without_its_secrets() -> None:
    # SessionMiddleware(app, session_opts) is Beaker's own example. Switching
    # the import only gave a ConfigError quoting the whole dict: the
    # database password and the signing key went into the traceback.
    from wsgisession import SessionMiddleware

    with pytest.raises(ConfigError) as info:
        SessionMiddleware(hello, BEAKER_CONFIG)  # type: ignore[arg-type]
    message = str(info.value)
    assert "hunter2" not in message and "do-not-show" not in message
    assert "Beaker" in message and "make_middleware" in message
    with pytest.raises(ConfigError) as info:
        SessionMiddleware(hello, settings=BEAKER_CONFIG)  # type: ignore[arg-type]
    assert "hunter2" not in str(info.value) and "do-not-show" not in str(info.value)


@pytest.mark.parametrize(
    "url", ["redis://:hunter2@cache:6379/0", "postgresql://app:hunter2@db/app"]
)
def test_a_url_given_as_the_store_is_not_shown(url: str) -> None:
    # Beaker's session.url moved into store = ...: the error quoted it,
    # password and all, where redis_url and sql_url never show one.
    for given in (url, "  " + url):
        message = refusal({"store": given})
        assert "hunter2" not in message
        assert "redis_url" in message and "sql_url" in message
    from wsgisession import SessionMiddleware

    with pytest.raises(ConfigError) as info:
        SessionMiddleware(hello, url)  # type: ignore[arg-type]
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "key", ["session.cookie_secure", "beaker.session.cookie_secure"]
)
def test_wsgisessions_option_under_beakers_prefix_is_refused(key: str) -> None:
    """Pyramid settings leave keys without ``wsgisession.`` to the app: an
    option written with Beaker's prefix would be skipped without a word, and
    the cookie silently not Secure."""
    settings = {"wsgisession.store": "memory", key: "true"}
    with pytest.raises(ConfigError, match="'wsgisession.cookie_secure'"):
        parse_settings(settings, "wsgisession.")
    with pytest.raises(ConfigError, match="did you mean 'cookie_secure'"):
        parse_settings({"store": "memory"}, global_conf={key: "true"})
