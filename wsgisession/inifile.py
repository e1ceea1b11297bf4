"""Reading wsgisession's keys from an ini file section, as Paste Deploy does.

``wsgisession check`` and ``clear-expired`` must see what ``loadapp()``
would: the same case of keys, the same globals (``here``, ``__file__``,
``[DEFAULT]``, and the ``global_conf`` an app passes in, given here as
``--global NAME=VALUE``). A ``%(name)s`` that none of those define is
also looked up in the environment (``name``, then ``NAME``), so that the
recipe ``secret_key = %(session_secret)s`` can be checked with
``SESSION_SECRET`` set. Errors name the file, section and key, never a
value: a value may be a secret.
"""

from __future__ import annotations

import codecs
import configparser
import os
import re
from collections.abc import Mapping
from typing import cast
from urllib.parse import unquote

from ._inifactory import check_factory
from .errors import ConfigError, SessionError

__all__ = ["PREFIX", "read_section"]

PREFIX = "wsgisession."
_REFERENCE = re.compile(r"%\(([^)]+)\)s")


def read_section(
    location: str,
    global_conf: Mapping[str, str] | None = None,
    *,
    factory: bool = False,
) -> tuple[dict[str, str], dict[str, str], str]:
    """The keys of ``FILE[#section]`` as Paste Deploy sees them: (local, globals, prefix).

    A bare section name is looked up as ``filter:NAME``, ``filter-app:NAME``
    then ``app:NAME``;
    without one, the single section that uses ``egg:wsgisession`` is taken.
    An ``app:`` section holds prefixed keys (``wsgisession.store``), as in
    Pyramid. ``global_conf`` are defaults that the file's ``[DEFAULT]``
    overrides, as with ``loadapp(global_conf=...)``. ``factory``: also look
    up a filter's ``use`` as ``loadapp()`` does (``check``; the maintenance
    commands need only the store, and import nothing of the app).
    """
    path, _, name = location.partition("#")
    local, globals_, section = _read(
        os.path.abspath(path), name, global_conf, (), factory
    )
    prefix = PREFIX if _kind(section) in APP_KINDS else ""
    return local, globals_, prefix


def _why(path: str) -> str:
    """Why ``path`` could not be read (ConfigParser.read ignores the error)."""
    try:
        with open(path, "rb"):
            return ""
    except OSError as exc:
        return f": {exc.strerror or exc}"


def _read(
    path: str,
    name: str,
    global_conf: Mapping[str, str] | None,
    seen: tuple[tuple[str, str], ...],
    factory: bool = False,
    file_globals: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], dict[str, str], str]:
    """(local, globals, section name) of ``path#name``, following ``use``.

    ``file_globals``: the globals Paste Deploy gave the file's parser when
    it opened it (``global_conf`` unless told otherwise): a section that
    ``use`` names in the same file is read with the file's parser, which
    never sees the ``set`` lines of the section using it.
    """
    opened_with = (global_conf if file_globals is None else file_globals) or {}
    local, globals_, section, raw, parser = _parsed_section(
        path, name, global_conf, opened_with
    )
    if "use" not in local:  # Paste takes the factory from such a key, and drops it
        for key in PROTOCOL_KEYS:
            local.pop(key, None)
    base = _base_section(local.get("use", ""), path, section)
    if base is None:
        if factory:
            check_factory(local.get("use", ""), path, section)
        return local, globals_, section
    if base in seen or base == (path, section):
        raise ConfigError(f"{path}: [{section}] use = {local['use']} makes a loop")
    # As Paste Deploy: the section named by ``use`` gives the keys and this
    # section's own keys win. The globals are this section's, passed on
    # (over the other file's [DEFAULT]), then the ``set`` lines of the
    # section named by ``use`` (over this file's [DEFAULT] too), then this
    # section's own ``set`` lines.
    same_file = opened_with if base[0] == path else None
    base_local, base_globals, _ = _read(
        *base, globals_, (*seen, (path, section)), factory, same_file
    )
    del local["use"]
    return (
        {**base_local, **local},
        {**base_globals, **_set_lines(raw, parser, section)},
        section,
    )


def _parsed_section(
    path: str,
    name: str,
    global_conf: Mapping[str, str] | None,
    opened_with: Mapping[str, str],
) -> tuple[
    dict[str, str],
    dict[str, str],
    str,
    configparser.ConfigParser,
    configparser.ConfigParser,
]:
    """(local, globals, section, raw parser, parser) of one section, not
    following ``use``: the file read with ``opened_with`` as its defaults."""
    here = {"here": os.path.dirname(path), "__file__": path}
    parser = configparser.ConfigParser()
    raw = configparser.ConfigParser(default_section="\0", interpolation=None)
    # Paste Deploy keeps the case of keys: so must we, or check would accept
    # a "Cookie_Age" that loadapp() then rejects. Of the globals too: set
    # after optionxform, or --global DATA_DIR would not fill %(DATA_DIR)s.
    parser.optionxform = raw.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        # Raw, as Paste Deploy's update_defaults: a bad % fails when used.
        defaults = cast(dict[str, str], parser.defaults())  # the parser's own dict
        defaults.update({**opened_with, **here})
        if not parser.read(path) or not raw.read(path):
            raise SessionError(f"cannot read configuration file {path}{_why(path)}")
        section = _find_section(raw, name, path)
        for key, value in _from_environment(raw, section, parser.defaults()).items():
            parser.set(configparser.DEFAULTSECT, key, value)
        # Interpolated, as Paste Deploy's parser gives them (%(here)s filled).
        defaults = {
            key: parser.get(configparser.DEFAULTSECT, key) or value
            for key, value in parser.defaults().items()
        }
        # As Paste Deploy: the global_conf passed in wins over [DEFAULT] in
        # the globals a factory gets (not in %(name)s, filled above).
        globals_ = {**defaults, **(global_conf or {})}
        local = _section_keys(parser, raw, section, defaults, globals_)
    except ConfigError as exc:  # a get line's global, found in no file
        raise ConfigError(f"{path}: {exc}") from None
    except configparser.Error as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {_undecodable(exc)}") from None
    return local, globals_, section, raw, parser


#: Keys that name a section's factory without ``use`` (Paste drops the one it uses).
PROTOCOL_KEYS = (
    "paste.filter_factory",
    "paste.filter_app_factory",
    "paste.app_factory",
    "paste.composite_factory",
    "paste.composit_factory",
)


def _base_section(use: str, path: str, section: str) -> tuple[str, str] | None:
    """The (file, section) that ``use = ...`` names, if it is one of an ini
    file: another section's bare name, or ``config:FILE[#NAME]``."""
    kind = "app" if _kind(section) in APP_KINDS else "filter"
    use = use.strip()
    if use.startswith("config:"):
        target, _, name = use[len("config:") :].partition("#")
        # As Paste Deploy: a config: URI's path is %-quoted (my%20base.ini).
        target = os.path.join(os.path.dirname(path), unquote(target))
        return os.path.abspath(target), f"{kind}:{name or 'main'}"
    if not use or re.match(r"[A-Za-z]+:", use):  # egg:, call:, package:, ...
        return None
    return path, f"{kind}:{use}"


def _set_lines(
    raw: configparser.ConfigParser, parser: configparser.ConfigParser, section: str
) -> dict[str, str]:
    """The globals a section sets itself, with ``set NAME = value``."""
    return {
        key[4:].strip(): parser.get(section, key)
        for key in raw.options(section)
        if key.startswith("set ")
    }


def _section_keys(
    parser: configparser.ConfigParser,
    raw: configparser.ConfigParser,
    section: str,
    defaults: Mapping[str, str],
    globals_: dict[str, str],
) -> dict[str, str]:
    """The section's own keys, as Paste Deploy reads them: a key [DEFAULT]
    also has is a global, ``set NAME = value`` sets the global NAME, and
    ``get NAME = GLOBAL`` takes NAME's value from the global GLOBAL."""
    local, wanted = {}, {}
    globals_.update(_set_lines(raw, parser, section))
    for key in raw.options(section):
        if key.startswith("set "):
            continue
        if key.startswith("get "):
            wanted[key[4:].strip()] = parser.get(section, key)
        elif key not in defaults:
            local[key] = parser.get(section, key)
    for name, global_name in wanted.items():
        if global_name not in globals_:
            raise ConfigError(
                f"[{section}] get {name} = {global_name}: no global {global_name} "
                "(define it in [DEFAULT], with set, or with --global)"
            )
        local[name] = globals_[global_name]
    return local


def _from_environment(
    raw: configparser.ConfigParser, section: str, defaults: Mapping[str, str]
) -> dict[str, str]:
    """``%(name)s`` references that nothing in the file defines, from the environment."""
    texts = [value for _, value in raw.items(section)]
    if raw.has_section(configparser.DEFAULTSECT):
        texts += [value for _, value in raw.items(configparser.DEFAULTSECT)]
    names = {name for text in texts for name in _REFERENCE.findall(text)}
    found = {}
    for name in sorted(names - set(defaults) - set(raw.options(section))):
        value = os.environ.get(name, os.environ.get(name.upper()))
        if value is not None:  # a literal: a % in it is not a reference
            found[name] = value.replace("%", "%%")
    return found


def _undecodable(exc: UnicodeDecodeError) -> str:
    """Why the file could not be read. Paste Deploy reads it in the locale's
    encoding, as here: in the C locale (UTF-8 mode off) that is ASCII, and
    "save the file as UTF-8" would send the operator to fix a good file."""
    if codecs.lookup(exc.encoding).name == "utf-8":
        return f"not UTF-8 text (byte {exc.start}); save the file as UTF-8"
    return (
        f"not {exc.encoding} text (byte {exc.start}), the encoding of this "
        "process's locale, in which Paste Deploy reads it too; for a UTF-8 "
        "file, run the command and the app with a UTF-8 locale (LC_ALL=C.UTF-8) "
        "or PYTHONUTF8=1"
    )


#: The globals Paste Deploy makes of the file's own path.
HERE_KEYS = ("here", "__file__")


def _describe(exc: configparser.Error) -> str:
    """The parser's complaint without the offending value (it may be a secret)."""
    if isinstance(exc, configparser.InterpolationMissingOptionError):
        name = exc.reference
        return (
            f"[{exc.section}] {exc.option} uses %({name})s, which is not defined: "
            f"give it with --global {name}=VALUE, set {name} or {name.upper()} in "
            "the environment, or define it in the file's [DEFAULT] section"
        )
    if isinstance(exc, configparser.InterpolationError) and exc.option in HERE_KEYS:
        return (
            f"the file's path holds a '%', which Paste Deploy reads as the start "
            f"of a %-substitution in %({exc.option})s, and fails to load it too: "
            "move the file to a directory without one"
        )
    if isinstance(exc, configparser.InterpolationError):
        return (
            f"[{exc.section}] {exc.option}: bad %-substitution; write a literal % "
            "as %% and a reference as %(name)s"
        )
    if isinstance(exc, configparser.MissingSectionHeaderError):
        if exc.lineno == 1 and exc.line.startswith("\ufeff"):
            return (
                "the file starts with a byte order mark (BOM), which Paste Deploy "
                "cannot read either; save it as UTF-8 without a BOM"
            )
        return (
            f"file contains no section headers: line {exc.lineno} comes before "
            "the first [section]"
        )
    if isinstance(exc, configparser.DuplicateOptionError):
        return f"[{exc.section}] sets {exc.option} twice (line {exc.lineno})"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"section [{exc.section}] appears twice (line {exc.lineno})"
    if isinstance(exc, configparser.ParsingError):
        lines = ", ".join(str(number) for number, _ in exc.errors)
        return f"cannot parse line {lines}: expected 'key = value' or '[section]'"
    return f"unreadable ini file ({type(exc).__name__})"


#: Section kinds whose keys carry the ``wsgisession.`` prefix (an app's, as Pyramid's).
APP_KINDS = ("app", "application")
#: The kinds of section a bare ``#name`` may be, looked up in this order.
NAMED_KINDS = ("filter", "filter-app", *APP_KINDS)


def _kind(section: str) -> str:
    """The kind of a section, ``filter`` of ``[filter: session]``."""
    return section.partition(":")[0].strip()


def _named(raw: configparser.ConfigParser, kind: str, name: str) -> list[str]:
    """The sections of ``kind`` named ``name``, as Paste Deploy matches them:
    spaces around the name do not count (``[filter: session]``)."""
    return [
        section
        for section in raw.sections()
        if section.startswith(f"{kind}:")
        and section[len(kind) + 1 :].strip() == name.strip()
    ]


def _find_section(raw: configparser.ConfigParser, name: str, path: str) -> str:
    if name:
        # A full section name as it is; a bare one as Paste Deploy looks it up.
        kind, colon, bare = name.partition(":")
        kinds = [kind.strip()] if colon else list(NAMED_KINDS)
        for candidate_kind in kinds:
            found = _named(raw, candidate_kind, bare if colon else name)
            if found:
                return found[0]
        raise SessionError(
            f"{path} has no section "
            f"{', '.join(f'[{k}:{(bare if colon else name).strip()}]' for k in kinds)}"
        )
    using = [
        s for s in raw.sections() if "wsgisession" in raw.get(s, "use", fallback="")
    ]
    if len(using) == 1:
        return using[0]
    raise SessionError(
        f"{path}: name the section, as in {path}#filter:session "
        f"(sections: {', '.join(raw.sections()) or 'none'})"
    )
