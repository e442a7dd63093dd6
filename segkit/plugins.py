"""Loading plugins from the ``segkit`` entry-point group into a registry of named builders.

Each entry point is loaded and each hook called inside its own ``try``: a broken plugin is
recorded with its reason and shown by ``segkit plugins``, and only a project that needs it fails
(pluggy's ``load_setuptools_entrypoints`` would let one import error take the whole CLI down).

What counts as the plugin's failure: any ``Exception``, and also ``SystemExit`` and
``KeyboardInterrupt`` raised by its import or hooks (``sys.exit(3)`` at import must not end every
command). A Ctrl-C the user presses while plugins load still stops the command: a SIGINT handler
installed for the loading notes the key press, and an interrupt seen after one is raised again.
What a plugin prints while loading is captured (``segkit plugins --json`` must stay JSON) and
kept with the plugin, shown by ``segkit plugins``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import importlib.metadata as metadata
import io
import os
import signal
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Literal, get_args

import pluggy

from segkit import hookspecs
from segkit.errors import PluginError
from segkit.options import Option
from segkit.specs import (
    CallbackSpec,
    DatasetSpec,
    InstancerSpec,
    LossSpec,
    MetricSpec,
    ModelSpec,
    PreparerSpec,
    SlideReaderSpec,
    Spec,
)

ENTRY_POINT_GROUP = "segkit"
DISABLE_ENV = "SEGKIT_DISABLE_PLUGINS"

Kind = Literal["model", "dataset", "loss", "metric", "callback", "preparer", "instancer", "slide_reader"]
KINDS: tuple[Kind, ...] = get_args(Kind)
_HOOK_OF_KIND: dict[Kind, str] = {
    "model": "segkit_models", "dataset": "segkit_datasets", "loss": "segkit_losses",
    "metric": "segkit_metrics", "callback": "segkit_callbacks", "preparer": "segkit_preparers",
    "instancer": "segkit_instancers", "slide_reader": "segkit_slide_readers",
}
#: Names the core itself relies on: the defaults of ``[loss] name``, ``[dataset] name`` and
#: ``[metrics] names``, and the headline figure of every report. As with pytest's essential
#: plugins, the built-in plugin that provides them cannot be disabled.
ESSENTIAL: dict[Kind, tuple[str, ...]] = {
    "loss": ("categorical_crossentropy",), "dataset": ("categorized-masks",), "metric": ("dice_coef_multiclass",),
}
#: The distribution the core and its built-in plugins ship in.
CORE_DISTRIBUTION = "segkit"
_SPEC_OF_KIND: dict[Kind, type[Spec]] = {
    "model": ModelSpec, "dataset": DatasetSpec, "loss": LossSpec,
    "metric": MetricSpec, "callback": CallbackSpec, "preparer": PreparerSpec,
    "instancer": InstancerSpec, "slide_reader": SlideReaderSpec,
}


@dataclass(frozen=True)
class PluginInfo:
    """One entry point of the ``segkit`` group and what became of it."""

    name: str
    module: str
    distribution: str
    version: str
    status: Literal["loaded", "failed", "disabled"] = "loaded"
    reason: str = ""
    #: what the plugin printed (stdout and stderr) while it was imported and its hooks called
    output: str = ""


@dataclass(frozen=True)
class Registered:
    """A spec with the kind it was registered as and the plugin that registered it."""

    kind: Kind
    spec: Spec
    plugin: PluginInfo

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class Registry:
    """Every plugin found, and the builders they registered, merged by kind and name."""

    plugins: list[PluginInfo] = field(default_factory=list)
    entries: dict[Kind, dict[str, Registered]] = field(default_factory=lambda: {k: {} for k in KINDS})
    #: (kind, name) -> why that name is unusable (a clash, or the plugin that had it failed)
    unusable: dict[tuple[Kind, str], str] = field(default_factory=dict)

    def all(self, kind: Kind) -> list[Registered]:
        return sorted(self.entries[kind].values(), key=lambda r: r.name)

    def names(self, kind: Kind) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: Kind, name: str) -> Registered:
        """The entry called ``name``, or a PluginError that lists the names there are."""
        if name in self.entries[kind]:
            return self.entries[kind][name]
        if (kind, name) in self.unusable:
            raise PluginError(f"{kind} '{name}' cannot be used: {self.unusable[(kind, name)]}")
        message = unknown_name_message(kind, name, self.names(kind))
        failed = [p for p in self.plugins if p.status == "failed"]
        if failed:
            message += "; plugins that failed to load: " + "; ".join(f"{_describe(p)}: {p.reason}" for p in failed)
        raise PluginError(message)

    def add(self, kind: Kind, spec: Spec, plugin: PluginInfo) -> None:
        """Register ``spec``; a second plugin claiming a taken name makes the name unusable."""
        clash = self.unusable.get((kind, spec.name))
        previous = self.entries[kind].pop(spec.name, None)
        if previous is None and clash is None:
            self.entries[kind][spec.name] = Registered(kind, spec, plugin)
            return
        owners = previous.plugin.distribution if previous else clash
        self.unusable[(kind, spec.name)] = (
            f"registered by both {_describe(previous.plugin) if previous else owners} and {_describe(plugin)}; "
            f"uninstall one, or disable one with {DISABLE_ENV}"
        )


def _describe(plugin: PluginInfo) -> str:
    return f"plugin '{plugin.name}' ({plugin.distribution} {plugin.version})"


def unknown_name_message(kind: str, name: str, available: Iterable[str]) -> str:
    names = sorted(available)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    listing = ", ".join(names) if names else "none are installed"
    return f"unknown {kind} '{name}' (available: {listing}){hint}"


def disabled_plugins() -> set[str]:
    """Names in ``SEGKIT_DISABLE_PLUGINS`` (comma separated; entry-point or distribution names)."""
    raw = os.environ.get(DISABLE_ENV, "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _plugin_info(entry_point: metadata.EntryPoint, **extra: Any) -> PluginInfo:
    dist = getattr(entry_point, "dist", None)
    return PluginInfo(
        name=entry_point.name,
        module=entry_point.value,
        distribution=dist.metadata["Name"] if dist is not None else "?",
        version=dist.version if dist is not None else "?",
        **extra,
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}".rstrip(": ")


class _BadPlugin(Exception):
    """Why one plugin cannot be used: a hook result that is no record, or a hook name with no spec."""


#: What a plugin's import or hook may raise that costs only that plugin (see the module docstring).
_PLUGIN_FAILURES = (Exception, SystemExit, KeyboardInterrupt)


class _UserInterrupts:
    """Tells a Ctrl-C the user pressed from a ``KeyboardInterrupt`` a plugin raised itself."""

    def __init__(self) -> None:
        self.pressed = False

    def on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def reraise_if_pressed(self, exc: BaseException) -> None:
        if self.pressed and isinstance(exc, KeyboardInterrupt):
            raise exc


@contextlib.contextmanager
def _noting_user_interrupts() -> Iterator[_UserInterrupts]:
    """Note SIGINT while plugins load; where Python's default handler is not in place
    (another thread, an embedding application) a signal's meaning is not ours to change."""
    interrupts = _UserInterrupts()
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield interrupts
        return
    signal.signal(signal.SIGINT, interrupts.on_sigint)
    try:
        yield interrupts
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _collect(registry: Registry, manager: pluggy.PluginManager, plugin: object, info: PluginInfo,
             interrupts: _UserInterrupts) -> PluginInfo:
    """Call each hook of one plugin on its own, so one bad hook or record costs only that plugin.

    Every record is checked before any is registered: a plugin is used whole or not at all.
    """
    try:
        _check_hook_names(manager, plugin)
        found = [(kind, spec) for kind, hook_name in _HOOK_OF_KIND.items()
                 for spec in _records(manager, plugin, kind, hook_name)]
    except _BadPlugin as exc:
        manager.unregister(plugin)
        return _failed(info, str(exc))
    except _PLUGIN_FAILURES as exc:  # any failure of third-party code is isolated
        interrupts.reraise_if_pressed(exc)
        manager.unregister(plugin)
        return _failed(info, f"hook raised {_one_line(exc)}")
    for kind, spec in found:
        registry.add(kind, spec, info)
    return info


def _check_hook_names(manager: pluggy.PluginManager, plugin: object) -> None:
    """A hook implementation whose name no spec has (``segkit_model``) would silently do nothing.

    This is pluggy's ``check_pending`` restricted to one plugin, so the failure is that plugin's.
    """
    for caller in manager.get_hookcallers(plugin) or ():
        if caller.has_spec():
            continue
        if any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls()):
            close = difflib.get_close_matches(caller.name, list(_HOOK_OF_KIND.values()), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (hooks: {', '.join(_HOOK_OF_KIND.values())})"
            raise _BadPlugin(f"unknown hook '{caller.name}'{hint}")


def _records(manager: pluggy.PluginManager, plugin: object, kind: Kind, hook_name: str) -> list[Spec]:
    """What this plugin's implementation of ``hook_name`` returned, each item checked."""
    records: list[Spec] = []
    for impl in getattr(manager.hook, hook_name).get_hookimpls():
        if impl.plugin is not plugin:
            continue
        result = impl.function()
        if result is None:
            continue
        if isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Iterable) or hasattr(result, "build"):
            raise _BadPlugin(f"hook {hook_name} returned {_kind_of(result)}, not a list of {_SPEC_OF_KIND[kind].__name__}")
        for record in result:
            problem = record_problem(kind, record)
            if problem:
                raise _BadPlugin(f"hook {hook_name} returned a bad record: {problem}")
            records.append(record)
    return records


def record_problem(kind: Kind, record: object) -> str:
    """Why ``record`` is not a usable spec of ``kind`` ("" when it is)."""
    expected = _SPEC_OF_KIND[kind]
    if not isinstance(record, expected):
        return f"{_kind_of(record)} is not a {expected.__name__}"
    name = record.name
    if not isinstance(name, str) or not name.strip():
        return f"name {name!r} is not a non-empty string"
    if any(not ch.isprintable() for ch in name):
        return f"name {name!r} contains control characters"
    if not isinstance(record.description, str):
        return f"{name!r}: description {_kind_of(record.description)} is not a string"
    if not callable(record.build):
        return f"{name!r}: build {_kind_of(record.build)} is not callable"
    options = record.options
    if not isinstance(options, tuple) or not all(isinstance(o, Option) for o in options):
        return f"{name!r}: options must be a tuple of Option records"
    return ""


def _kind_of(value: object) -> str:
    """The type and a short repr of a plugin's value, for a one-line reason."""
    text = repr(getattr(value, "name", None) if isinstance(value, tuple(_SPEC_OF_KIND.values())) else value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _failed(info: PluginInfo, reason: str) -> PluginInfo:
    return dataclasses.replace(info, status="failed", reason=reason)


def build_registry(entry_points: Iterable[metadata.EntryPoint] | None = None) -> Registry:
    """Load every ``segkit`` entry point (or the ones given) into a fresh registry."""
    manager = pluggy.PluginManager("segkit")
    manager.add_hookspecs(hookspecs)
    registry = Registry()
    blocked = disabled_plugins()
    points = entry_points if entry_points is not None else metadata.entry_points(group=ENTRY_POINT_GROUP)
    with _noting_user_interrupts() as interrupts:
        for entry_point in sorted(points, key=lambda ep: ep.name):
            info = _plugin_info(entry_point)
            if info.name in blocked or info.distribution in blocked:
                _refuse_disabling_essentials(entry_point, info, interrupts)
                manager.set_blocked(info.name)
                registry.plugins.append(dataclasses.replace(info, status="disabled", reason=f"in {DISABLE_ENV}"))
                continue
            registry.plugins.append(_load(registry, manager, entry_point, info, interrupts))
    return registry


def _load(registry: Registry, manager: pluggy.PluginManager, entry_point: metadata.EntryPoint, info: PluginInfo,
          interrupts: _UserInterrupts) -> PluginInfo:
    """Import one plugin and collect its records, what it prints kept with it."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        try:
            plugin = entry_point.load()
            manager.register(plugin, name=info.name)
        except _PLUGIN_FAILURES as exc:  # a plugin that fails to import is reported, not fatal
            interrupts.reraise_if_pressed(exc)
            result = _failed(info, f"import failed: {_one_line(exc)}")
        else:
            result = _collect(registry, manager, plugin, info, interrupts)
    return dataclasses.replace(result, output=printed.getvalue())


def _refuse_disabling_essentials(entry_point: metadata.EntryPoint, info: PluginInfo,
                                 interrupts: _UserInterrupts) -> None:
    """A PluginError when a built-in plugin about to be disabled provides an essential name.

    Only segkit's own plugins are loaded to find out (they are the core's code): a third-party
    plugin the user disabled is never imported.
    """
    if info.distribution != CORE_DISTRIBUTION:
        return
    scratch = Registry()
    manager = pluggy.PluginManager("segkit")
    manager.add_hookspecs(hookspecs)
    _load(scratch, manager, entry_point, info, interrupts)
    provided = [f"{kind} '{name}'" for kind, names in ESSENTIAL.items() for name in names if name in scratch.entries[kind]]
    if provided:
        raise PluginError(
            f"{DISABLE_ENV}: {_describe(info)} cannot be disabled: it provides {' and '.join(provided)}, which segkit "
            f"itself relies on (remove '{info.name}' from --disable-plugin and {DISABLE_ENV})"
        )


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry, built on first use; tests call ``get_registry.cache_clear()``."""
    return build_registry()
