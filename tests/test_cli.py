"""The ``captum-effnet`` command: models, plugins, scale, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from torchvision.models import get_model_weights

from captum_effnet import _plugins
from captum_effnet.cli import main


def test_console_script_lists_models_with_torchvision_parameter_counts():
    exe = shutil.which("captum-effnet", path=str(Path(sys.executable).parent))
    assert exe, "the console script is not installed next to this interpreter"
    proc = subprocess.run([exe, "models", "--format", "json"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    for i in range(8):
        name = f"efficientnet_b{i}"
        expected = get_model_weights(name).DEFAULT.meta["num_params"]  # torchvision's number
        assert rows[name]["params"] == f"{expected:,}"
        assert rows[name]["plugin"] == "builtin"
    assert rows["efficientnet_lite0"]["params"] == "4,652,008"  # the lite0 package's count
    assert "imagenet" in rows["efficientnet_lite0"]["weights"]


def test_models_text_table(capsys):
    assert main(["models", "--no-params"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "params", "resolution", "weights", "plugin"]
    assert any(line.startswith("efficientnet_b7 ") and " 600 " in line for line in out)


def test_plugins_lists_the_builtin(capsys):
    assert main(["plugins", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name": "builtin", "distribution": "captum-effnet", "status": "loaded"}.items() <= \
        rows[0].items()


def test_plugins_reports_failures_with_nonzero_exit(capsys, monkeypatch):
    class Broken:
        @staticmethod
        def captum_effnet_register_models(registry):
            raise RuntimeError("kaput")

    from captum_effnet import hookimpl

    Broken.captum_effnet_register_models = hookimpl(Broken.captum_effnet_register_models)
    monkeypatch.delenv(_plugins.STRICT_ENV, raising=False)
    _plugins.register_plugin(Broken, name="broken_at_runtime")
    try:
        with pytest.warns(_plugins.PluginWarning, match="kaput"):
            status = main(["plugins"])
        assert status == 1
        assert "FAILED" in capsys.readouterr().out
    finally:
        _plugins.unregister_plugin("broken_at_runtime")


def test_scale_table_grows_about_two_to_the_phi(capsys):
    assert main(["scale", "--phi", "0", "1", "2", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3
    ratios = [float(r["ratio"]) for r in rows]
    assert ratios[0] == pytest.approx(1.0)
    # the paper's constraint alpha * beta**2 * gamma**2 ~= 2: cost ~ 2**phi (1.92**phi exactly)
    assert 1.6 < ratios[1] < 2.4 and 3.0 < ratios[2] < 5.0


def test_errors_are_one_line_without_traceback(capsys):
    assert main(["scale", "--phi", "1", "--alpha", "-1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("captum-effnet: error: ") and "alpha" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["--debug", "scale", "--phi", "1", "--alpha", "-1"]) == 1
    assert "Traceback" in capsys.readouterr().err
