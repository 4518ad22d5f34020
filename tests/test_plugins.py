"""Plugin discovery through real distributions, failure rules and the hooks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import captum_effnet as ce
from captum_effnet import _plugins, hookspecs

GOOD_PLUGIN = """
    import torch
    from torch import nn
    from captum_effnet import hookimpl

    class TinyNet(nn.Module):
        def __init__(self, num_classes=3):
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                                          nn.Conv2d(4, 5, 3, padding=1), nn.ReLU())
            self.head = nn.Sequential(nn.Conv2d(5, 6, 1), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(6, num_classes)

        def forward(self, x):
            return self.fc(self.pool(self.head(self.backbone(x))).flatten(1))

    def build_tiny_net(num_classes=3, **kwargs):
        return TinyNet(num_classes=num_classes)

    @hookimpl
    def captum_effnet_register_models(registry):
        registry.register("tiny_net", build_tiny_net, resolution=32,
                          description="a test model")

    @hookimpl
    def captum_effnet_target_layer(model):
        # deliberately not the last 4-D layer, so the answer is visibly used
        return model.backbone if isinstance(model, TinyNet) else None
"""


def make_dist(root: Path, dist: str, module: str, source: str, version: str = "0.1",
              entry_points: dict[str, str] | None = None) -> Path:
    """Write a real, importable distribution: a module plus a ``*.dist-info``."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    eps = entry_points or {module: module}
    lines = "".join(f"{k} = {v}\n" for k, v in eps.items())
    (info / "entry_points.txt").write_text(f"[{hookspecs.PROJECT_NAME}]\n{lines}")
    return root


@pytest.fixture
def fresh_registry(monkeypatch):
    """Forget loaded plugins before and after the test; no env switches set."""
    monkeypatch.delenv(_plugins.STRICT_ENV, raising=False)
    monkeypatch.delenv(_plugins.AUTOLOAD_ENV, raising=False)
    _plugins._reset()
    yield
    _plugins._reset()


def test_discovery_through_a_real_distribution_in_a_subprocess(tmp_path):
    make_dist(tmp_path, "tiny-net-plugin", "tiny_net_plugin", GOOD_PLUGIN, version="1.2.3")
    script = textwrap.dedent("""
        import json, torch
        import captum_effnet as ce
        from captum_effnet.attr import GradCam
        model = ce.get_model("tiny_net", num_classes=4)
        cam = GradCam(model)
        attr = cam.attribute(torch.rand(2, 3, 8, 8), target=1)
        print(json.dumps({
            "listed": "tiny_net" in ce.list_models(),
            "out": list(model(torch.rand(1, 3, 8, 8)).shape),
            "layer_is_backbone": cam.layer is model.backbone,
            "attr_shape": list(attr.shape),
            "plugins": [list(p) for p in ce.list_plugins()],
        }))
    """)
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["listed"] is True
    assert result["out"] == [1, 4]
    assert result["layer_is_backbone"] is True
    assert result["attr_shape"] == [2, 1, 8, 8]
    assert ["tiny_net_plugin", "tiny-net-plugin", "1.2.3"] in result["plugins"]
    assert ["builtin", "captum-effnet", ce.__version__] in result["plugins"]


def test_hook_captum_effnet_register_models(tmp_path, monkeypatch, fresh_registry):
    make_dist(tmp_path, "tiny-net-plugin", "tiny_net_plugin", GOOD_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "tiny_net" in ce.list_models()
    model = ce.get_model("tiny_net", num_classes=7)
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 7)
    entry = _plugins.registry_entry("model", "tiny_net")
    assert entry.plugin == "tiny_net_plugin"
    assert entry.info["resolution"] == 32
    # profile() sees plugin models too, at the resolution the plugin registered
    prof = ce.profile("tiny_net")
    assert prof.resolution == 32
    assert prof.params == sum(p.numel() for p in ce.get_model("tiny_net").parameters())


def test_hook_captum_effnet_register_attributions(fresh_registry):
    from captum.attr import LayerGradCam

    class MoreCams:
        @ce.hookimpl
        def captum_effnet_register_attributions(self, registry):
            registry.register("captum_layer_gradcam", LayerGradCam)

    ce.register_plugin(MoreCams(), name="more_cams")
    try:
        assert "captum_layer_gradcam" in ce.list_attributions()
        assert ce.get_attribution("captum_layer_gradcam") is LayerGradCam
        assert {"gradcam", "gradcam++", "permutation"} <= set(ce.list_attributions())
    finally:
        ce.unregister_plugin("more_cams")
    assert "captum_layer_gradcam" not in ce.list_attributions()


def test_hook_captum_effnet_target_layer(tmp_path, monkeypatch, fresh_registry):
    make_dist(tmp_path, "tiny-net-plugin", "tiny_net_plugin", GOOD_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    tiny = ce.get_model("tiny_net")
    assert _plugins.target_layer_from_plugins(tiny) is tiny.backbone
    # the built-in answer for EfficientNets, and no answer for other models
    b0 = ce.get_model("efficientnet_b0")
    assert _plugins.target_layer_from_plugins(b0) is b0.features[-1]
    assert _plugins.target_layer_from_plugins(nn.Linear(2, 2)) is None


def test_target_layer_answer_that_is_not_a_submodule_names_the_plugin(fresh_registry):
    class Liar:
        @ce.hookimpl
        def captum_effnet_target_layer(self, model):
            return nn.Conv2d(1, 1, 1)

    ce.register_plugin(Liar(), name="liar")
    try:
        with pytest.raises(ce.PluginError, match=r"'liar'.*not a submodule"):
            _plugins.target_layer_from_plugins(nn.Sequential(nn.Conv2d(1, 1, 1)))
    finally:
        ce.unregister_plugin("liar")


def test_broken_plugin_beside_a_good_one(tmp_path, monkeypatch, fresh_registry):
    make_dist(tmp_path, "tiny-net-plugin", "tiny_net_plugin", GOOD_PLUGIN)
    make_dist(tmp_path, "broken-dist", "broken_plugin", "raise ImportError('no such thing')")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(ce.PluginWarning, match=r"'broken_plugin'.*'broken-dist'.*no such thing"):
        names = ce.list_models()
    assert "tiny_net" in names and "efficientnet_b0" in names
    failures = _plugins.plugin_failures()
    assert [(n, d) for n, d, _ in failures] == [("broken_plugin", "broken-dist")]
    assert "broken_plugin" not in [p.name for p in ce.list_plugins()]


def test_hook_that_raises_is_reported_and_leaves_nothing_half_registered(fresh_registry):
    class HalfWay:
        @ce.hookimpl
        def captum_effnet_register_models(self, registry):
            registry.register("half_a", lambda **kw: nn.Linear(1, 1))
            raise RuntimeError("boom after one registration")

    ce.register_plugin(HalfWay(), name="halfway")
    try:
        with pytest.warns(ce.PluginWarning, match="'halfway'.*boom after one registration"):
            names = ce.list_models()
        assert "half_a" not in names
        assert "efficientnet_b0" in names
    finally:
        ce.unregister_plugin("halfway")


def test_strict_mode_turns_failures_into_errors(tmp_path, monkeypatch, fresh_registry):
    make_dist(tmp_path, "broken-dist", "broken_plugin", "raise ImportError('no such thing')")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(_plugins.STRICT_ENV, "1")
    with pytest.raises(ce.PluginError, match=r"'broken-dist'.*no such thing"):
        ce.list_models()
    # nothing half-loaded: the next call tries again and fails the same way
    with pytest.raises(ce.PluginError):
        ce.list_models()


def test_disable_autoload_loads_only_the_builtins(tmp_path, monkeypatch, fresh_registry):
    make_dist(tmp_path, "tiny-net-plugin", "tiny_net_plugin", GOOD_PLUGIN)
    make_dist(tmp_path, "broken-dist", "broken_plugin", "raise ImportError('no such thing')")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(_plugins.AUTOLOAD_ENV, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the broken plugin is not even imported
        names = ce.list_models()
    assert "tiny_net" not in names and "efficientnet_b0" in names
    assert [p.name for p in ce.list_plugins()] == ["builtin"]


def test_duplicate_name_names_both_plugins(tmp_path, monkeypatch, fresh_registry):
    source = """
        from captum_effnet import hookimpl
        from torch import nn

        @hookimpl
        def captum_effnet_register_models(registry):
            registry.register("efficientnet_b0", lambda **kw: nn.Identity())
    """
    make_dist(tmp_path, "squatter-dist", "squatter", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ce.PluginError, match=r"'efficientnet_b0'.*'builtin' and 'squatter'"):
        ce.list_models()


@pytest.mark.parametrize(
    ("obj", "kind", "match"),
    [
        (42, "model", "callable"),
        (nn.Linear, "attribution", "subclass of captum.attr.Attribution"),
    ],
)
def test_registering_the_wrong_type_names_the_plugin(obj, kind, match, fresh_registry):
    hook = f"captum_effnet_register_{kind}s"

    class Wrong:
        pass

    setattr(Wrong, hook, ce.hookimpl(lambda self, registry: registry.register("x", obj)))
    ce.register_plugin(Wrong(), name="wrong_type")
    try:
        with pytest.warns(ce.PluginWarning, match=f"'wrong_type'.*{match}"):
            ce.list_models()
    finally:
        ce.unregister_plugin("wrong_type")


def test_builder_returning_a_non_module_names_the_plugin(fresh_registry):
    class NotAModel:
        @ce.hookimpl
        def captum_effnet_register_models(self, registry):
            registry.register("not_a_model", lambda **kw: "a string")

    ce.register_plugin(NotAModel(), name="not_a_model_plugin")
    try:
        with pytest.raises(ce.PluginError, match=r"'not_a_model'.*'not_a_model_plugin'.*str"):
            ce.get_model("not_a_model")
    finally:
        ce.unregister_plugin("not_a_model_plugin")


def test_unknown_names_list_the_valid_ones(fresh_registry):
    with pytest.raises(ValueError, match=r"did you mean 'efficientnet_b0'.*efficientnet_b1,"):
        ce.get_model("efficientnet-b0")
    with pytest.raises(ValueError, match="gradcam"):
        ce.get_attribution("nope")
    with pytest.raises(TypeError, match="'name' parameter of get_model must be a str"):
        ce.get_model(3)


def test_list_plugins_shows_the_builtin_with_its_distribution(fresh_registry):
    plugins = ce.list_plugins()
    assert all(isinstance(p, ce.PluginInfo) for p in plugins)
    assert ("builtin", "captum-effnet", ce.__version__) in plugins
    assert plugins == sorted(plugins)


def test_loading_happens_once(fresh_registry, monkeypatch):
    calls = []
    real = _plugins._load_plugins
    monkeypatch.setattr(_plugins, "_load_plugins", lambda pm: (calls.append(1), real(pm)))
    ce.list_models()
    ce.list_attributions()
    ce.get_model("efficientnet_b0")
    assert calls == [1]


# -- failures at call time (issue 7) -----------------------------------------------------


def test_target_layer_hook_raising_at_call_time_is_reported_and_the_rule_takes_over(
        fresh_registry):
    from captum_effnet.attr import GradCam, find_target_layer

    class Flaky:
        @ce.hookimpl
        def captum_effnet_target_layer(self, model):
            raise RuntimeError("layer lookup exploded")

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 2))
    x = torch.rand(2, 3, 8, 8)
    ce.register_plugin(Flaky(), name="flaky")
    try:
        with pytest.warns(ce.PluginWarning, match=r"'flaky'.*captum_effnet_target_layer.*"
                                                  r"layer lookup exploded"):
            layer = find_target_layer(net, x)
        assert layer is net[1]  # the generic rule's answer: the last 4-D output
        with pytest.warns(ce.PluginWarning, match="'flaky'"):
            maps = GradCam(net).attribute(x, target=0)
        assert maps.shape == (2, 1, 8, 8)
    finally:
        ce.unregister_plugin("flaky")


@pytest.mark.parametrize("returned", [{"my_net": nn.Linear}, "my_net", 0])
def test_register_hook_returning_a_value_is_reported_with_the_plugin_name(returned,
                                                                          fresh_registry):
    class Returns:
        @ce.hookimpl
        def captum_effnet_register_models(self, registry):
            registry.register("staged_net", lambda **kw: nn.Linear(1, 1))
            return returned

    ce.register_plugin(Returns(), name="returns_value")
    try:
        with pytest.warns(ce.PluginWarning, match=r"'returns_value'.*returned "
                                                  rf"{type(returned).__name__}.*return None"):
            names = ce.list_models()
        assert "staged_net" not in names and "efficientnet_b0" in names
    finally:
        ce.unregister_plugin("returns_value")


def test_attribution_registered_as_an_instance_is_refused_with_the_plugin_name(
        fresh_registry):
    from captum_effnet.attr import GradCam

    conv = nn.Conv2d(1, 1, 1)
    instance = GradCam(conv, conv)

    class Instance:
        @ce.hookimpl
        def captum_effnet_register_attributions(self, registry):
            registry.register("cam_instance", instance)

    ce.register_plugin(Instance(), name="instance_plugin")
    try:
        with pytest.warns(ce.PluginWarning, match=r"'instance_plugin'.*subclass"):
            names = ce.list_attributions()
        assert "cam_instance" not in names and "gradcam" in names
    finally:
        ce.unregister_plugin("instance_plugin")
