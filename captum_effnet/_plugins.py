"""Plugin manager, entry-point discovery and the model/attribution registries.

Loading happens once, lazily, on the first call that needs a registry
(:func:`list_models`, :func:`get_model`, ...). Every distribution that declares
an entry point in the ``captum_effnet`` group is imported and registered with
pluggy; this package's own features come in the same way, through its
``builtin`` entry point.

Failure rules
-------------
- A plugin whose import, registration or hook raises is reported with a
  :class:`PluginWarning` naming the distribution, the entry point and the
  exception; the other plugins still load. With
  ``CAPTUM_EFFNET_STRICT_PLUGINS=1`` the same problem raises
  :class:`PluginError` instead.
- ``CAPTUM_EFFNET_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the built-in plugin.
- Registering a name that another plugin registered already raises
  :class:`PluginError` naming the name and both plugins, in every mode.
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import MappingProxyType
from typing import Any, Final, NamedTuple

import pluggy

from . import hookspecs
from ._validation import check_type, param_error, suggest

__all__ = [
    "AUTOLOAD_ENV",
    "STRICT_ENV",
    "PluginError",
    "PluginInfo",
    "PluginWarning",
    "RegistryEntry",
    "RegistryView",
    "get_attribution",
    "get_model",
    "list_attributions",
    "list_models",
    "list_plugins",
    "plugin_failures",
    "register_plugin",
    "registry_entry",
    "target_layer_from_plugins",
    "unregister_plugin",
]

#: Set to ``1`` to turn plugin problems into errors.
STRICT_ENV: Final = "CAPTUM_EFFNET_STRICT_PLUGINS"
#: Set to ``1`` to load only the built-in plugin.
AUTOLOAD_ENV: Final = "CAPTUM_EFFNET_DISABLE_PLUGIN_AUTOLOAD"

_GROUP: Final = hookspecs.PROJECT_NAME
_BUILTIN_NAME: Final = "builtin"
_BUILTIN_MODULE: Final = "captum_effnet._builtin"
_OWN_DIST: Final = "captum-effnet"


class PluginError(RuntimeError):
    """A plugin could not be loaded or used (strict mode), or two plugins clash."""


class PluginWarning(UserWarning):
    """A plugin could not be loaded or used; the others still work."""


class PluginInfo(NamedTuple):
    """One loaded plugin, as listed by :func:`list_plugins`."""

    name: str
    distribution: str
    version: str


@dataclass(frozen=True)
class RegistryEntry:
    """A registered model builder or attribution class."""

    name: str
    obj: Any
    plugin: str
    info: Mapping[str, Any] = field(default_factory=dict)


def _truthy(env: str) -> bool:
    return os.environ.get(env, "").strip().lower() in ("1", "true", "yes", "on")


class RegistryView:
    """What a plugin's registration hook receives: ``register(name, obj, **info)``.

    Registrations are staged and committed only when the plugin's hook returns
    without error, so a failing plugin leaves nothing half-registered.
    """

    def __init__(self, kind: str, plugin: str) -> None:
        self.kind = kind
        self.plugin = plugin
        self._staged: dict[str, RegistryEntry] = {}

    def register(self, name: str, obj: Any, **info: Any) -> None:
        """Register ``obj`` under ``name``.

        Parameters
        ----------
        name : str
            A non-empty name, unique across all plugins.
        obj : callable or type
            For models, a callable ``builder(**kwargs) -> nn.Module``; for
            attributions, a subclass of :class:`captum.attr.Attribution`.
        **info
            Free-form metadata (``resolution=``, ``weights=``, ``description=``).
        """
        func = f"{self.kind} registry.register (plugin {self.plugin!r})"
        check_type(name, str, name="name", func=func, expected="a non-empty str")
        if not name.strip():
            raise param_error("name", func, "a non-empty str", name)
        if self.kind == "attribution":
            from captum.attr import Attribution

            if not (isinstance(obj, type) and issubclass(obj, Attribution)):
                raise param_error("obj", func, "a subclass of captum.attr.Attribution", obj,
                                  exc=TypeError)
        elif not callable(obj):
            raise param_error("obj", func, "a callable returning a torch.nn.Module", obj,
                              exc=TypeError)
        if name in self._staged:
            raise PluginError(
                f"{self.kind} name {name!r} is registered twice by plugin {self.plugin!r}"
            )
        self._staged[name] = RegistryEntry(name, obj, self.plugin, MappingProxyType(dict(info)))


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.loaded = False
        self.pm: pluggy.PluginManager | None = None
        self.plugins: dict[str, PluginInfo] = {}
        self.failures: list[tuple[str, str, str]] = []
        self.registries: dict[str, dict[str, RegistryEntry]] = {"model": {}, "attribution": {}}
        self.manual: dict[str, Any] = {}


_state = _State()


def _reset() -> None:
    """Forget everything loaded (tests, and after environment changes)."""
    with _state.lock:
        manual = _state.manual
        _state.__init__()  # type: ignore[misc]
        _state.manual = manual


def _report(plugin: str, dist: str, what: str, exc: BaseException) -> None:
    message = (
        f"captum_effnet plugin {plugin!r} from distribution {dist!r} failed {what}: "
        f"{type(exc).__name__}: {exc}"
    )
    if _truthy(STRICT_ENV):
        raise PluginError(message + f" (unset {STRICT_ENV} to skip broken plugins)") from exc
    _state.failures.append((plugin, dist, f"{what}: {type(exc).__name__}: {exc}"))
    warnings.warn(message + f" (set {STRICT_ENV}=1 to make this an error)", PluginWarning,
                  stacklevel=4)


def _own_version() -> str:
    try:
        return metadata.version(_OWN_DIST)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _entry_points() -> list[metadata.EntryPoint]:
    eps = list(metadata.entry_points(group=_GROUP))
    # The built-in plugin first, so that later plugins are asked first by
    # firstresult hooks (pluggy calls the most recently registered first).
    eps.sort(key=lambda ep: (ep.value != _BUILTIN_MODULE, ep.name))
    return eps


def _dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "<unknown distribution>", "?"
    return dist.metadata["Name"] or "<unknown distribution>", dist.version or "?"


def _register(pm: pluggy.PluginManager, plugin: Any, name: str, dist: str, version: str) -> None:
    try:
        pm.register(plugin, name=name)
    except Exception:  # pluggy's ValueError / PluginValidationError
        owner = next((p for p in _state.plugins.values() if p.name == name), None)
        if owner is not None:
            exc = ValueError(
                f"plugin name {name!r} is already taken by distribution {owner.distribution!r}"
            )
        _report(name, dist, "to register", exc)
        return
    _state.plugins[name] = PluginInfo(name, dist, version)


def _load_plugins(pm: pluggy.PluginManager) -> None:
    builtin_seen = False
    if not _truthy(AUTOLOAD_ENV):
        for ep in _entry_points():
            dist, version = _dist_of(ep)
            if ep.value == _BUILTIN_MODULE:
                if builtin_seen:
                    continue  # the same install seen twice on sys.path
                builtin_seen = True
            try:
                plugin = ep.load()
            except Exception as exc:
                _report(ep.name, dist, f"to import (entry point {ep.name} = {ep.value})", exc)
                continue
            _register(pm, plugin, ep.name, dist, version)
    if not builtin_seen:
        # Autoload off, or running from a source tree that is not installed.
        _register(pm, importlib.import_module(_BUILTIN_MODULE), _BUILTIN_NAME, _OWN_DIST,
                  _own_version())
    for name, plugin in _state.manual.items():
        _register(pm, plugin, name, "<registered at run time>", "")


def _impls(pm: pluggy.PluginManager, hook: str) -> list[Any]:
    caller = getattr(pm.hook, hook)
    return [i for i in caller.get_hookimpls()
            if not (getattr(i, "hookwrapper", False) or getattr(i, "wrapper", False))]


def _call_impl(impl: Any, **kwargs: Any) -> Any:
    return impl.function(*[kwargs[a] for a in impl.argnames])


def _collect(pm: pluggy.PluginManager, kind: str, hook: str) -> None:
    registry = _state.registries[kind]
    # get_hookimpls() is in registration order: the built-in plugin first.
    for impl in _impls(pm, hook):
        plugin = impl.plugin_name
        view = RegistryView(kind, plugin)
        try:
            returned = _call_impl(impl, registry=view)
            if returned is not None:  # e.g. a dict of builders instead of register()
                raise TypeError(
                    f"{hook} returned {type(returned).__name__}; it must call "
                    "registry.register(name, obj) and return None (nothing it staged "
                    "was registered)"
                )
        except Exception as exc:
            info = _state.plugins.get(plugin)
            _report(plugin, info.distribution if info else "?", f"in {hook}", exc)
            continue
        for name, entry in view._staged.items():
            if name in registry:
                raise PluginError(
                    f"{kind} name {name!r} is registered by two plugins: "
                    f"{registry[name].plugin!r} and {plugin!r}; uninstall one of them or "
                    f"ask its author to rename it"
                )
            registry[name] = entry


def _ensure_loaded() -> _State:
    if _state.loaded:
        return _state
    with _state.lock:
        if _state.loaded:
            return _state
        _reset()
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        try:
            _load_plugins(pm)
            _collect(pm, "model", "captum_effnet_register_models")
            _collect(pm, "attribution", "captum_effnet_register_attributions")
        except BaseException:
            _reset()
            raise
        _state.pm = pm
        _state.loaded = True
    return _state


def register_plugin(plugin: Any, name: str | None = None) -> str:
    """Register a plugin object or module at run time (no entry point needed).

    Useful in notebooks and tests. The registries are rebuilt on next use.

    Parameters
    ----------
    plugin : module or object
        Anything with ``@hookimpl`` functions or methods.
    name : str, optional
        Plugin name; defaults to the module's ``__name__`` or the class name.

    Returns
    -------
    str
        The name the plugin was registered under.

    Examples
    --------
    >>> import captum_effnet as ce
    >>> from torch import nn
    >>> class TinyNets:
    ...     @ce.hookimpl
    ...     def captum_effnet_register_models(self, registry):
    ...         registry.register("tiny_linear", lambda **kw: nn.Linear(2, 2))
    >>> ce.register_plugin(TinyNets(), name="tiny")
    'tiny'
    >>> "tiny_linear" in ce.list_models()
    True
    >>> ce.unregister_plugin("tiny")
    """
    if plugin is None or isinstance(plugin, (str, bytes, int, float, complex)):
        raise param_error("plugin", "register_plugin",
                          "a module or object with @hookimpl functions", plugin, exc=TypeError)
    if name is None:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
    check_type(name, str, name="name", func="register_plugin")
    with _state.lock:
        if name in _state.manual or name in _ensure_loaded().plugins:
            raise ValueError(f"The 'name' parameter of register_plugin must be a name not yet "
                             f"taken (taken: {sorted({*_state.plugins, *_state.manual})}). "
                             f"Got {name!r} instead.")
        _state.manual[name] = plugin
        _state.loaded = False
    return name


def unregister_plugin(name: str) -> None:
    """Remove a plugin added with :func:`register_plugin`."""
    check_type(name, str, name="name", func="unregister_plugin", expected="a str")
    with _state.lock:
        if name not in _state.manual:
            raise ValueError(
                f"The 'name' parameter of unregister_plugin must be one of "
                f"{sorted(_state.manual)} (plugins registered at run time). Got {name!r} instead."
            )
        del _state.manual[name]
        _state.loaded = False


def _lookup(kind: str, name: Any, func: str, param: str = "name") -> RegistryEntry:
    registry = _ensure_loaded().registries[kind]
    check_type(name, str, name=param, func=func, expected="a str")
    if name not in registry:
        names = sorted(registry)
        close = suggest(name, names)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        raise ValueError(
            f"The {param!r} parameter of {func} must be a registered {kind} name{hint}; valid "
            f"names: {', '.join(names)}. Got {name!r} instead."
        )
    return registry[name]


def registry_entry(kind: str, name: str) -> RegistryEntry:
    """The registry entry (object, plugin, info) for a model or attribution name."""
    return _lookup(kind, name, f"registry_entry({kind!r})")


def list_models() -> list[str]:
    """Sorted names of every registered model, built-ins and plugins.

    Examples
    --------
    >>> import captum_effnet as ce
    >>> "efficientnet_b0" in ce.list_models()
    True
    """
    return sorted(_ensure_loaded().registries["model"])


def get_model(name: str, *, weights: Any = None, num_classes: int | None = None,
              **kwargs: Any) -> Any:
    """Build a registered model.

    Parameters
    ----------
    name : str
        One of :func:`list_models`.
    weights : str or path-like, optional
        Passed to the builder when given (``"DEFAULT"``, a torchvision weight
        name, ``"imagenet"`` for lite0, or a checkpoint path).
    num_classes : int, optional
        Passed to the builder when given.
    **kwargs
        Passed to the builder.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import captum_effnet as ce
    >>> model = ce.get_model("efficientnet_b0", num_classes=10)
    >>> model.classifier[-1].out_features
    10
    """
    from torch import nn

    entry = _lookup("model", name, "get_model")
    if weights is not None:
        kwargs["weights"] = weights
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    model = entry.obj(**kwargs)
    if not isinstance(model, nn.Module):
        raise PluginError(
            f"model builder {name!r} of plugin {entry.plugin!r} returned "
            f"{type(model).__name__}, expected a torch.nn.Module"
        )
    return model


def list_attributions() -> list[str]:
    """Sorted names of every registered attribution method.

    Examples
    --------
    >>> import captum_effnet as ce
    >>> "gradcam" in ce.list_attributions()
    True
    """
    return sorted(_ensure_loaded().registries["attribution"])


def get_attribution(name: str) -> type:
    """The attribution class registered as ``name`` (instantiate it with the model).

    Examples
    --------
    >>> import captum_effnet as ce
    >>> ce.get_attribution("gradcam").__name__
    'GradCam'
    """
    return _lookup("attribution", name, "get_attribution").obj


def list_plugins() -> list[PluginInfo]:
    """Loaded plugins as ``(name, distribution, version)``, sorted by name.

    Examples
    --------
    >>> import captum_effnet as ce
    >>> [p.name for p in ce.list_plugins()][:1]
    ['builtin']
    """
    return sorted(_ensure_loaded().plugins.values())


def plugin_failures() -> list[tuple[str, str, str]]:
    """Plugins that failed to load or run: ``(name, distribution, problem)``."""
    return list(_ensure_loaded().failures)


def target_layer_from_plugins(model: Any) -> Any:
    """Ask plugins for ``model``'s Grad-CAM layer (the firstresult hook).

    Plugins are asked most recently registered first; the first non-``None``
    answer wins. An answer that is not a submodule of ``model`` is an error
    naming the plugin; a hook that raises is reported like a failed plugin.

    Returns
    -------
    torch.nn.Module or None
    """
    from torch import nn

    state = _ensure_loaded()
    if state.pm is None:  # pragma: no cover - loaded implies a manager
        return None
    for impl in reversed(_impls(state.pm, "captum_effnet_target_layer")):
        plugin = impl.plugin_name
        try:
            layer = _call_impl(impl, model=model)
        except Exception as exc:
            info = state.plugins.get(plugin)
            with state.lock:
                _report(plugin, info.distribution if info else "?",
                        "in captum_effnet_target_layer", exc)
            continue
        if layer is None:
            continue
        if not isinstance(layer, nn.Module) or not any(m is layer for m in model.modules()):
            raise PluginError(
                f"plugin {plugin!r} answered captum_effnet_target_layer with "
                f"{type(layer).__name__}, which is not a submodule of the "
                f"{type(model).__name__} it was given"
            )
        return layer
    return None


def _iter_entries(kind: str) -> Iterator[RegistryEntry]:
    registry = _ensure_loaded().registries[kind]
    for name in sorted(registry):
        yield registry[name]

