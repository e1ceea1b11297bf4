"""The configuration schema: Python options, ini strings, store specs, Paste Deploy."""

from __future__ import annotations

import dataclasses
import math
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from servers import ServerProcess

from wsgisession import SessionMiddleware
from wsgisession.config import (
    Settings,
    StoreSpec,
    describe_options,
    import_dotted,
    parse_settings,
)
from wsgisession.errors import ConfigError
from wsgisession.keys import generate_key
from wsgisession.paste import filter_app_factory, filter_factory, make_middleware
from wsgisession.stores import (
    FileStore,
    MemcachedStore,
    MemoryStore,
    RedisStore,
    SignedCookieStore,
    SQLiteStore,
    Store,
)
from wsgisession.storespec import store_keys

BOOL_OPTIONS = [
    "cookie_httponly",
    "cookie_partitioned",
    "expire_at_browser_close",
    "save_every_request",
    "lock",
]


class JsonLike:
    """A serializer object: anything with callable dumps and loads."""

    def dumps(self, obj: Any) -> bytes:
        return repr(obj).encode()

    def loads(self, data: bytes) -> Any:
        return data


class RecordingStore(MemoryStore):
    """A custom store that remembers the keyword arguments it was built with."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.kwargs = kwargs


def make_app(global_conf: Any = None, **local_conf: Any) -> Any:
    """A WSGI app for the Paste tests: counts visits in the session."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        session["visits"] = session.get("visits", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(session["visits"]).encode()]

    return app


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


# -- Settings from Python values ---------------------------------------------


def test_defaults_are_the_documented_ones() -> None:
    assert Settings() == Settings.from_options({})
    assert dataclasses.asdict(Settings()) == {
        "cookie_name": "sessionid",
        "cookie_age": 1209600,
        "cookie_domain": None,
        "cookie_path": "/",
        "cookie_secure": False,
        "cookie_httponly": True,
        "cookie_samesite": "Lax",
        "cookie_partitioned": False,
        "expire_at_browser_close": False,
        "save_every_request": False,
        "absolute_timeout": None,
        "serializer": "json",
        "environ_key": "wsgisession",
        "lock": False,
        "lock_timeout": 10.0,
        "lock_ttl": 60.0,
        "private_responses": True,
        "cleanup_interval": 300,
        "reissue_time": None,
        "save_on_error": False,
    }


SERIALIZER = JsonLike()

PY_GOOD = [
    ("cookie_name", "sid", "sid"),
    ("cookie_name", "session.id", "session.id"),
    ("cookie_age", 0, 0),
    ("cookie_age", 3600, 3600),
    ("cookie_domain", "example.com", "example.com"),
    ("cookie_domain", ".example.com", ".example.com"),
    ("cookie_domain", None, None),
    ("cookie_path", "/app", "/app"),
    ("cookie_secure", True, True),
    ("cookie_secure", "auto", "auto"),
    ("cookie_secure", "AUTO", "auto"),
    ("cookie_samesite", "strict", "Strict"),
    ("cookie_samesite", "none", "None"),
    ("cookie_samesite", "Lax", "Lax"),
    ("cookie_samesite", False, False),
    ("absolute_timeout", 86400, 86400),
    ("absolute_timeout", None, None),
    ("serializer", "pickle", "pickle"),
    ("serializer", "JSON", "json"),
    ("serializer", SERIALIZER, SERIALIZER),
    (
        "serializer",
        "wsgisession.serializers:TaggedJSONSerializer",
        "wsgisession.serializers:TaggedJSONSerializer",
    ),
    ("environ_key", "beaker.session", "beaker.session"),
    ("lock_timeout", 2.5, 2.5),
    ("lock_timeout", 0.01, 0.01),
    ("lock_timeout", 3, 3.0),
] + [(name, value, value) for name in BOOL_OPTIONS for value in (True, False)]


@pytest.mark.parametrize(("name", "value", "expected"), PY_GOOD)
def test_python_good_values(name: str, value: Any, expected: Any) -> None:
    settings = Settings.from_options({name: value})
    assert getattr(settings, name) == expected
    assert type(getattr(settings, name)) is type(expected)


PY_BAD = [
    ("cookie_name", "my session"),
    ("cookie_name", "a;b"),
    ("cookie_name", ""),
    ("cookie_name", 5),
    ("cookie_age", -1),
    ("cookie_age", "3600"),
    ("cookie_age", True),
    ("cookie_age", 1.5),
    ("cookie_age", None),
    ("cookie_age", 10**12),
    ("cookie_domain", ""),
    ("cookie_domain", "https://example.com"),
    ("cookie_domain", "exa mple.com"),
    ("cookie_domain", 5),
    ("cookie_path", "app"),
    ("cookie_path", "/a;b"),
    ("cookie_path", None),
    ("cookie_secure", "yes"),
    ("cookie_secure", 1),
    ("cookie_secure", None),
    ("cookie_samesite", "lax-ish"),
    ("cookie_samesite", None),
    ("cookie_samesite", True),
    ("absolute_timeout", 0),
    ("absolute_timeout", -5),
    ("absolute_timeout", "60"),
    ("absolute_timeout", False),
    ("serializer", "yaml"),
    ("serializer", object()),
    ("serializer", "json:dumps"),
    ("environ_key", ""),
    ("environ_key", 5),
    ("lock_timeout", -1),
    ("lock_ttl", -1),
    ("lock_ttl", "60"),
    ("lock_timeout", float("inf")),
    ("lock_timeout", float("nan")),
    ("lock_timeout", True),
    ("lock_timeout", "10"),
] + [(name, value) for name in BOOL_OPTIONS for value in (1, 0, "true", None)]


@pytest.mark.parametrize(("name", "value"), PY_BAD)
def test_python_bad_values_name_key_value_and_expectation(
    name: str, value: Any
) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_options({name: value})
    message = str(info.value)
    assert repr(name) in message
    assert repr(value) in message
    assert "expected" in message


def test_samesite_none_as_python_none_explains_the_two_spellings() -> None:
    with pytest.raises(ConfigError, match="False omits the attribute"):
        Settings.from_options({"cookie_samesite": None})


def test_serializer_that_cannot_be_imported() -> None:
    with pytest.raises(ConfigError, match="no_such_module_here"):
        Settings.from_options({"serializer": "no_such_module_here:Thing"})


def test_misspelled_keyword_suggests_the_nearest_name() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_options({"cookie_agee": 60})
    assert "'cookie_agee'" in str(info.value)
    assert "did you mean 'cookie_age'" in str(info.value)


def test_unknown_keyword_without_close_match_lists_the_options() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_options({"zzz": 1})
    assert "'zzz'" in str(info.value) and "environ_key" in str(info.value)


def test_beaker_names_point_to_ours() -> None:
    with pytest.raises(ConfigError, match="save_every_request saves every non-empty"):
        Settings.from_options({"auto": True})


def test_store_key_as_keyword_says_to_pass_a_store() -> None:
    with pytest.raises(ConfigError, match="store=RedisStore"):
        Settings.from_options({"redis_url": "redis://localhost"})


def test_settings_are_frozen_and_replace_revalidates() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.cookie_age = 5  # type: ignore[misc]
    with pytest.raises(ConfigError, match="cookie_age"):
        dataclasses.replace(settings, cookie_age=-1)


def test_as_options_round_trips_and_keeps_objects() -> None:
    settings = Settings.from_options({"serializer": SERIALIZER, "cookie_age": 5})
    options = settings.as_options()
    assert options["serializer"] is SERIALIZER
    assert Settings.from_options(options) == settings


# -- Settings from ini strings -----------------------------------------------

INI_GOOD = [
    ("cookie_name", " sid ", "sid"),
    ("cookie_age", "3600", 3600),
    ("cookie_age", "0", 0),
    ("cookie_domain", "example.com", "example.com"),
    ("cookie_domain", "none", None),
    ("cookie_domain", "None", None),
    ("cookie_path", "/app", "/app"),
    ("cookie_secure", "true", True),
    ("cookie_secure", "Off", False),
    ("cookie_secure", "auto", "auto"),
    ("cookie_samesite", "strict", "Strict"),
    ("cookie_samesite", "none", "None"),
    ("cookie_samesite", "Lax", "Lax"),
    ("cookie_samesite", "false", False),
    ("absolute_timeout", "none", None),
    ("absolute_timeout", "60", 60),
    ("serializer", "pickle", "pickle"),
    ("environ_key", "beaker.session", "beaker.session"),
    ("lock_timeout", "2.5", 2.5),
    ("lock_timeout", "0.5", 0.5),
] + [
    (name, text, value)
    for name in BOOL_OPTIONS
    for text, value in [
        ("true", True),
        ("FALSE", False),
        ("yes", True),
        ("no", False),
        ("on", True),
        (" off ", False),
    ]
]


@pytest.mark.parametrize(("name", "text", "expected"), INI_GOOD)
def test_ini_good_values(name: str, text: str, expected: Any) -> None:
    settings, _ = parse_settings({name: text})
    assert getattr(settings, name) == expected
    assert type(getattr(settings, name)) is type(expected)


INI_BAD = [
    ("cookie_age", "-5", "from 0"),
    ("cookie_age", "1.5", "digits"),
    ("cookie_age", "2w", "digits"),
    ("cookie_age", "1_000", "digits"),
    ("cookie_age", "none", "digits"),
    ("cookie_age", "", "digits"),
    ("cookie_name", "", "empty value"),
    ("cookie_domain", "", "write 'none'"),
    ("cookie_path", "app", "starting with '/'"),
    ("cookie_secure", "2", "true or false"),
    ("cookie_secure", "sometimes", "auto"),
    ("cookie_samesite", "true", "lax, strict"),
    ("cookie_samesite", "1", "lax, strict"),
    ("absolute_timeout", "0", "from 1"),
    ("absolute_timeout", "-1", "from 1"),
    ("serializer", "yaml", "'json', 'pickle'"),
    ("lock_timeout", "-1", "> 0"),
    ("lock_timeout", "0", "> 0"),
    ("lock_ttl", "0", "> 0"),
    ("lock_timeout", "inf", "digits"),
    ("lock_timeout", "1e3", "digits"),
] + [
    (name, text, expect)
    for name in BOOL_OPTIONS
    for text, expect in [
        ("2", "true or false"),
        ("yep", "true or false"),
        ("", "true or false"),
    ]
]


@pytest.mark.parametrize(("name", "text", "expect"), INI_BAD)
def test_ini_bad_values(name: str, text: str, expect: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({name: text})
    message = str(info.value)
    assert repr(name) in message
    assert expect in message


def test_digit_booleans_read_as_asbool() -> None:
    assert parse_settings({"cookie_httponly": "0"})[0].cookie_httponly is False


def test_ini_misspelled_key_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"cookie_agee": "60"})
    assert "'cookie_agee'" in str(info.value)
    assert "did you mean 'cookie_age'" in str(info.value)


def test_ini_misspelled_store_key_suggests() -> None:
    with pytest.raises(ConfigError, match="did you mean 'redis_url'"):
        parse_settings({"store": "redis", "redis_uri": "redis://localhost"})


def test_non_string_values_are_checked_as_python_values() -> None:
    settings, _ = parse_settings({"cookie_age": 60, "lock": True})
    assert settings.cookie_age == 60 and settings.lock is True
    with pytest.raises(ConfigError, match="'cookie_age'"):
        parse_settings({"cookie_age": True})


# -- prefixes and Paste's own keys --------------------------------------------


def test_prefix_reads_only_prefixed_keys() -> None:
    settings, spec = parse_settings(
        {
            "wsgisession.cookie_age": "60",
            "wsgisession.store": "memory",
            "pyramid.reload_templates": "true",
            "sqlalchemy.url": "sqlite://",
            "cookie_agee": "this is not ours",
        },
        prefix="wsgisession.",
    )
    assert settings.cookie_age == 60
    assert spec.store == "memory"


def test_unknown_prefixed_key_is_an_error_with_prefixed_hint() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"wsgisession.cookie_agee": "60"}, prefix="wsgisession.")
    assert "'wsgisession.cookie_agee'" in str(info.value)
    assert "did you mean 'wsgisession.cookie_age'" in str(info.value)


def test_prefixed_bad_value_names_the_key_as_written() -> None:
    with pytest.raises(ConfigError, match="'wsgisession.cookie_age'"):
        parse_settings({"wsgisession.cookie_age": "-1"}, prefix="wsgisession.")


def test_prefixed_store_errors_name_prefixed_keys() -> None:
    with pytest.raises(ConfigError, match="wsgisession.redis_url"):
        parse_settings({"wsgisession.store": "redis"}, prefix="wsgisession.")


def test_paste_keys_and_globals_are_not_options() -> None:
    settings, _ = parse_settings(
        {
            "use": "egg:wsgisession#session",
            "here": "/srv/app",
            "__file__": "/srv/app/app.ini",
            "debug": "true",
            "cookie_age": "60",
        },
        global_conf={
            "here": "/srv/app",
            "__file__": "/srv/app/app.ini",
            "debug": "true",
        },
    )
    assert settings.cookie_age == 60


def test_default_section_options_flow_in_and_section_wins() -> None:
    settings, spec = parse_settings(
        {"cookie_age": "60"},
        global_conf={"cookie_age": "99", "cookie_path": "/app", "store": "memory"},
    )
    assert (settings.cookie_age, settings.cookie_path, spec.store) == (
        60,
        "/app",
        "memory",
    )


def test_without_global_conf_an_unknown_key_is_still_an_error() -> None:
    with pytest.raises(ConfigError, match="'debug'"):
        parse_settings({"debug": "true"})


# -- the store spec -----------------------------------------------------------


def _round_trip(store: Store) -> None:
    key = store.create(generate_key(), b"payload", time.time() + 60)
    assert key is not None
    record = store.load(key)
    assert record is not None and record.payload == b"payload"


def test_default_spec_is_sqlite_at_the_default_path() -> None:
    _, spec = parse_settings({})
    assert spec == StoreSpec()
    assert isinstance(spec.build(), SQLiteStore)


def test_build_memory() -> None:
    _, spec = parse_settings({"store": "memory"})
    store = spec.build()
    assert isinstance(store, MemoryStore)
    _round_trip(store)


def test_build_file(tmp_path: Path) -> None:
    _, spec = parse_settings({"store": "FILE", "file_path": str(tmp_path / "s")})
    store = spec.build()
    assert isinstance(store, FileStore)
    assert (tmp_path / "s").is_dir()
    _round_trip(store)


def test_build_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    _, spec = parse_settings({"store": "sqlite", "sqlite_path": str(path)})
    store = spec.build()
    assert isinstance(store, SQLiteStore)
    _round_trip(store)
    assert path.exists()


def test_build_cookie_with_fallbacks() -> None:
    _, old = parse_settings({"store": "cookie", "secret_key": "old-secret" + "o" * 22})
    _, spec = parse_settings(
        {
            "store": "cookie",
            "secret_key": "new-secret" + "n" * 22,
            "secret_key_fallbacks": "old-secret"
            + "o" * 22
            + "\n  older-secret"
            + "p" * 22,
        }
    )
    assert spec.secret_key_fallbacks == (
        "old-secret" + "o" * 22,
        "older-secret" + "p" * 22,
    )
    store = spec.build()
    assert isinstance(store, SignedCookieStore)
    _round_trip(store)
    old_key = old.build().create(generate_key(), b"from before", time.time() + 60)
    assert old_key is not None
    record = store.load(old_key)
    assert record is not None and record.payload == b"from before"


def test_build_memcached(clean_memcached: ServerProcess) -> None:
    _, spec = parse_settings(
        {
            "store": "memcached",
            "memcached_servers": clean_memcached.address,
            "key_prefix": "cfgtest:",
        }
    )
    store = spec.build()
    assert isinstance(store, MemcachedStore)
    _round_trip(store)


def test_build_redis(clean_redis: ServerProcess) -> None:
    _, spec = parse_settings({"store": "redis", "redis_url": clean_redis.url})
    store = spec.build()
    assert isinstance(store, RedisStore)
    _round_trip(store)


@pytest.mark.parametrize(
    ("settings", "missing"),
    [
        ({"store": "redis"}, "redis_url"),
        ({"store": "cookie"}, "secret_key"),
        ({"store": "memcached"}, "memcached_servers"),
        ({"store": "memcached", "memcached_servers": "  "}, "memcached_servers"),
        ({"store": "cookie", "secret_key": "none"}, "secret_key"),
    ],
)
def test_missing_required_store_key(settings: dict[str, str], missing: str) -> None:
    with pytest.raises(
        ConfigError, match=f"store = {settings['store']} needs {missing}"
    ):
        parse_settings(settings)
    spec = StoreSpec(store=settings["store"])
    with pytest.raises(ConfigError, match=f"needs {missing}"):
        spec.build()


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"store": "file", "redis_url": "redis://localhost"}, "redis_url"),
        ({"store": "sqlite", "file_path": "/tmp/x"}, "file_path"),
        (
            {"store": "memory", "secret_key": "s3cret3de6ef6acd310cd177243bd0cf4ffd"},
            "secret_key",
        ),
        (
            {
                "secret_key_fallbacks": "aa420769770d784c179f1317aae12262"
                + " "
                + "b405ea565bcf4773f753be1e051f021e"
            },
            "secret_key_fallbacks",
        ),
        ({"store": "file", "key_prefix": "app:"}, "key_prefix"),
        (
            {"store": "redis", "redis_url": "redis://h", "memcached_servers": "h:1"},
            "memcached_servers",
        ),
    ],
)
def test_store_key_that_does_not_apply(settings: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=f"{key} does not apply"):
        parse_settings(settings)
    values = {k: v for k, v in settings.items()}
    values.pop(key)
    spec = parse_settings(values)[1].replace(**{key: _python(key, settings[key])})
    with pytest.raises(ConfigError, match=f"{key} does not apply"):
        spec.build()


def _python(key: str, text: str) -> Any:
    return tuple(text.split()) if key.endswith(("servers", "fallbacks")) else text


@pytest.mark.parametrize(
    ("settings", "expect"),
    [
        ({"store": "mongodb"}, "one of memory, file"),
        ({"store": ""}, "empty value"),
        ({"store": "redis", "redis_url": "http://localhost"}, "redis://"),
        (
            {"store": "redis", "redis_url": "redis://h", "key_prefix": "a b"},
            "without spaces",
        ),
        ({"store": "file", "file_path": ""}, "write 'none'"),
    ],
)
def test_bad_store_values(settings: dict[str, str], expect: str) -> None:
    with pytest.raises(ConfigError, match=expect):
        parse_settings(settings)


def test_python_store_spec_values() -> None:
    servers: Any = ["a:1", "b:2"]
    spec = StoreSpec(store="memcached", memcached_servers=servers)
    assert spec.memcached_servers == ("a:1", "b:2")
    with pytest.raises(ConfigError, match="not one string"):
        StoreSpec(store="memcached", memcached_servers="a:1")  # type: ignore[arg-type]
    path: Any = Path("/x")
    assert StoreSpec(store="file", file_path=path).file_path == "/x"


def test_custom_store_is_called_with_the_keys_that_are_set() -> None:
    _, spec = parse_settings(
        {
            "store": f"{__name__}:RecordingStore",
            "redis_url": "redis://h",
            "key_prefix": "p:",
        }
    )
    store = spec.build()
    assert isinstance(store, RecordingStore)
    assert store.kwargs == {"redis_url": "redis://h", "key_prefix": "p:"}
    _, bare = parse_settings({"store": f"{__name__}:RecordingStore"})
    built = bare.build()
    assert isinstance(built, RecordingStore) and built.kwargs == {}


@pytest.mark.parametrize(
    ("target", "expect"),
    [
        ("no_such_module_here:Store", "cannot import"),
        ("wsgisession.stores.memory:NoSuchStore", "cannot import"),
        ("collections:OrderedDict", "not a wsgisession.stores.base.Store"),
        ("wsgisession.stores.memory:MemoryStore", "cannot be called"),
    ],
)
def test_custom_store_errors(target: str, expect: str) -> None:
    settings = {"store": target}
    if "MemoryStore" in target:
        settings["secret_key"] = "x40f4a39fd00e0f49e288f0320331cdc"
    _, spec = parse_settings(settings)
    with pytest.raises(ConfigError, match=expect):
        spec.build()


def test_pickle_is_refused_with_the_cookie_store() -> None:
    with pytest.raises(ConfigError, match="pickle is refused"):
        parse_settings(
            {
                "store": "cookie",
                "secret_key": "seaf5bf2337958ea5df1b7e2da9d9a9e",
                "serializer": "pickle",
            }
        )
    settings, _ = parse_settings({"store": "file", "serializer": "pickle"})
    assert settings.serializer == "pickle"


def test_store_spec_repr_hides_secrets() -> None:
    spec = StoreSpec(
        store="cookie",
        secret_key="hunter2-" + "5f0c9e2d8b7a6143e9d0c2b1",
        secret_key_fallbacks=("old-fallback-" + "a83e1f7c0d92b6e45c1a",),
    )
    assert "hunter2" not in repr(spec) and "old-fallback" not in repr(spec)
    assert "store='cookie'" in repr(spec)


def test_import_dotted() -> None:
    assert import_dotted("wsgisession.stores.memory:MemoryStore") is MemoryStore
    with pytest.raises(ConfigError, match="package.module:Name"):
        import_dotted("wsgisession.stores.memory.MemoryStore")


# -- the docs table -----------------------------------------------------------


def test_describe_options_covers_every_field_once() -> None:
    rows = describe_options()
    names = [row.name for row in rows]
    fields = [f.name for f in dataclasses.fields(Settings)]
    fields += list(store_keys())
    assert names == fields
    for row in rows:
        assert row.kind and row.help.endswith(".")
    by_name = {row.name: row for row in rows}
    assert by_name["cookie_age"].default == 1209600
    assert "Required by: redis" in by_name["redis_url"].help
    assert "Store: memcached, redis" in by_name["key_prefix"].help


# -- Paste Deploy and Pyramid -------------------------------------------------


def test_make_middleware_from_pyramid_settings(tmp_path: Path) -> None:
    from wsgisession import SessionMiddleware

    middleware = make_middleware(
        hello,
        {
            "wsgisession.store": "sqlite",
            "wsgisession.sqlite_path": str(tmp_path / "s.sqlite3"),
            "wsgisession.cookie_age": "60",
            "pyramid.includes": "pyramid_tm",
        },
    )
    assert isinstance(middleware, SessionMiddleware)
    assert isinstance(middleware.store, SQLiteStore)
    assert middleware.settings.cookie_age == 60


def test_filter_app_factory_ignores_globals(tmp_path: Path) -> None:
    middleware = filter_app_factory(
        hello,
        {"here": str(tmp_path), "__file__": str(tmp_path / "app.ini"), "debug": "true"},
        store="memory",
        cookie_secure="auto",
    )
    assert isinstance(middleware.store, MemoryStore)
    assert middleware.settings.cookie_secure == "auto"


def test_filter_factory_validates_before_wrapping() -> None:
    with pytest.raises(ConfigError, match="did you mean 'cookie_name'"):
        filter_factory({}, cookie_nam="sid")
    wrap = filter_factory({}, store="memory", cookie_name="sid")
    first, second = wrap(hello), wrap(hello)
    assert first.settings.cookie_name == "sid"
    assert first.store is second.store


def _write_ini(tmp_path: Path, filter_lines: str) -> Path:
    ini = tmp_path / "app.ini"
    ini.write_text(
        textwrap.dedent(
            f"""\
            [DEFAULT]
            debug = true
            admin_email = ops@example.com

            [filter:session]
            use = egg:wsgisession#session
            {filter_lines}

            [app:counter]
            use = call:{__name__}:make_app

            [pipeline:main]
            pipeline = session counter
            """
        )
    )
    return ini


def test_paste_deploy_loads_the_filter(tmp_path: Path) -> None:
    from paste.deploy import loadapp
    from webtest import TestApp

    keys = [
        "store = file",
        "file_path = %(here)s/sessions",
        "cookie_age = 3600",
        "cookie_domain = example.com",
        "cookie_secure = auto",
    ]
    lines = "\n            ".join(keys)
    app = loadapp(f"config:{_write_ini(tmp_path, lines)}")
    assert isinstance(app.store, FileStore)
    assert (tmp_path / "sessions").is_dir()
    client = TestApp(app, extra_environ={"HTTP_HOST": "www.example.com"})
    response = client.get("/")
    assert response.text == "1"
    cookie = response.headers["Set-Cookie"]
    assert "Max-Age=3600" in cookie
    assert "Domain=example.com" in cookie
    assert "Secure" not in cookie
    assert client.get("/").text == "2"
    secure = TestApp(app).get("https://www.example.com/")
    assert "Secure" in secure.headers["Set-Cookie"]


def test_paste_deploy_reports_a_misspelled_key_at_load(tmp_path: Path) -> None:
    from paste.deploy import loadapp

    ini = _write_ini(tmp_path, "store = memory\n            cookie_agee = 60")
    with pytest.raises(ConfigError, match="did you mean 'cookie_age'"):
        loadapp(f"config:{ini}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (word, value)
        for value, words in [
            (True, ["true", "YES", "On", "y", "T", "1"]),
            (False, ["false", "No", "OFF", "n", "f", "0"]),
        ]
        for word in words
    ],
)
def test_booleans_accept_what_asbool_accepts(text: str, expected: bool) -> None:
    """Issue 14: ini and settings-dict booleans read as Paste Deploy's asbool."""
    settings, _ = parse_settings({"cookie_httponly": text, "lock": text})
    assert settings.cookie_httponly is expected and settings.lock is expected
    settings, _ = parse_settings({"cookie_secure": text})
    assert settings.cookie_secure is expected


@pytest.mark.parametrize("name", ["lock_ttl", "lock_timeout"])
@pytest.mark.parametrize("value", [0, -1, math.inf, math.nan])
def test_lock_durations_must_be_positive_and_finite(name: str, value: float) -> None:
    """Issue 19.3: a zero lock_ttl made the lock do nothing; refused at startup."""
    with pytest.raises(ConfigError, match=name):
        Settings(**{name: value})


def test_typed_options_match_the_settings_fields() -> None:
    """Options (what mypy and IDEs see) names every field of Settings, no more."""
    from typing import get_type_hints

    from wsgisession.config import Options

    assert list(Options.__annotations__) == [
        f.name for f in dataclasses.fields(Settings)
    ]
    assert get_type_hints(Options)


def test_middleware_takes_checked_settings_as_they_are() -> None:
    settings = Settings(cookie_age=60)
    middleware = SessionMiddleware(lambda e, s: [], MemoryStore(), settings=settings)
    assert middleware.settings is settings
    overridden = SessionMiddleware(
        lambda e, s: [], MemoryStore(), settings=settings, cookie_name="sid"
    )
    assert overridden.settings.cookie_age == 60
    assert overridden.settings.cookie_name == "sid"
    with pytest.raises(ConfigError, match="settings"):
        SessionMiddleware(lambda e, s: [], MemoryStore(), settings={"cookie_age": 1})  # type: ignore[arg-type]


def test_pyramid_errors_name_the_prefixed_key() -> None:
    with pytest.raises(ConfigError, match="'wsgisession.cookie_age'"):
        make_middleware(lambda e, s: [], {"wsgisession.cookie_age": "-1"})


class ClosingStore(MemoryStore):
    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_store_and_middleware_close_as_context_managers() -> None:
    with ClosingStore() as store:
        assert isinstance(store, ClosingStore)
    assert store.closed == 1
    MemoryStore().close()  # the base close is a no-op
    with SessionMiddleware(lambda e, s: [], ClosingStore()) as middleware:
        pass
    assert isinstance(middleware.store, ClosingStore) and middleware.store.closed == 1
