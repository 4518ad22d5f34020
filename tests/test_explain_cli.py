"""The main job from a terminal: `captum-effnet explain` and `demo` on real photos."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

skimage_data = pytest.importorskip("skimage.data")

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CUP_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


def _exe() -> str:
    exe = shutil.which("captum-effnet", path=str(Path(sys.executable).parent))
    assert exe, "the console script is not installed next to this interpreter"
    return exe


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_exe(), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage_data.chelsea()).save(folder / "chelsea.jpg", quality=95)
    Image.fromarray(skimage_data.coffee()).save(folder / "coffee.png")
    return folder


def test_explain_writes_overlays_and_records(photos, tmp_path):
    proc = _run("explain", str(photos), "--out", str(tmp_path), "--format", "json",
                "--top-k", "3")
    assert proc.returncode == 0, proc.stderr
    records = {r["image"]: r for r in map(json.loads, proc.stdout.strip().splitlines())}
    assert set(records) == {"chelsea.jpg", "coffee.png"}
    chelsea, coffee = records["chelsea.jpg"], records["coffee.png"]
    assert chelsea["top_k"][0]["index"] in CAT_CLASSES
    assert coffee["top_k"][0]["index"] in CUP_CLASSES
    assert len(chelsea["top_k"]) == 3
    assert chelsea["model"] == "efficientnet_lite0" and chelsea["weights"] == "imagenet"
    assert chelsea["target"]["index"] == chelsea["top_k"][0]["index"]  # top1 by default
    stats = chelsea["map_stats"]["gradcam"]
    assert stats["max"] > stats["mean"] > 0
    for record in records.values():
        png, js = Path(record["outputs"]["png"]), Path(record["outputs"]["json"])
        assert json.loads(js.read_text())["top_k"] == record["top_k"]
        with Image.open(png) as img:
            assert img.size[0] > 200 and img.size[1] > 200
            pixels = np.asarray(img.convert("RGB"), dtype=float)
        assert pixels.std() > 10  # a picture, not a blank canvas


def test_explain_target_by_class_name_and_index(photos, tmp_path):
    proc = _run("explain", str(photos / "chelsea.jpg"), "--out", str(tmp_path),
                "--format", "json", "--target", "Egyptian cat", "--method", "gradcam++")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["target"] == {**record["target"], "index": 285, "label": "Egyptian cat"}
    assert record["method"] == "gradcam++"


def test_one_bad_image_among_many_is_reported_and_the_others_processed(photos, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(photos / "chelsea.jpg", folder / "a_chelsea.jpg")
    data = (photos / "chelsea.jpg").read_bytes()
    (folder / "b_truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "c_not_an_image.png").write_text("hello")
    proc = _run("explain", str(folder), "--out", str(tmp_path / "out"))
    assert proc.returncode == 1
    assert "a_chelsea.jpg" in proc.stdout
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in proc.stderr
    assert "b_truncated.jpg" in errors[0] and "truncated or corrupt" in errors[0]
    assert "c_not_an_image.png" in errors[1]
    assert (tmp_path / "out" / "a_chelsea_gradcam.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jpg"], r"image 'missing\.jpg' does not exist"),
        (["{photos}", "--model", "efficientnet_b9"], r"did you mean.*valid names: efficientnet_b0"),
        (["{photos}", "--method", "gradcm"], r"'method'.*one of 'gradcam'"),
        (["{photos}/chelsea.jpg", "--target", "tabby cta"], r"Did you mean 'tabby'"),
        (["{empty}"], r"holds no images"),
        (["{photos}", "--weights", "imagenet21k"], r"imagenet21k"),
        (["{photos}", "--device", "tpu"], r"'device'"),
    ],
)
def test_failures_are_one_line_with_nonzero_exit(args, message, photos, tmp_path, capsys):
    # in-process: the same code path as the console script, without a new interpreter
    from captum_effnet.cli import main

    (tmp_path / "empty").mkdir()
    args = [a.format(photos=photos, empty=tmp_path / "empty") for a in args]
    assert main(["explain", *args, "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("captum-effnet: error:"), err
    assert re.search(message, err), err


def test_debug_shows_the_traceback(tmp_path, capsys):
    from captum_effnet.cli import main

    assert main(["--debug", "explain", str(tmp_path / "missing.jpg")]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_demo_writes_a_report_on_real_photos(tmp_path):
    from captum_effnet.cli import main

    assert main(["demo", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        with Image.open(tmp_path / f"{name}_report.png") as img:
            width, height = img.size
        assert width > 3 * height  # one row: photo | three maps | top-5


def test_explain_works_with_a_plugin_model(photos, tmp_path, capsys):
    """A third-party model without metadata gets ImageNet preprocessing and Grad-CAM."""
    from torch import nn

    import captum_effnet as ce
    from captum_effnet.cli import main

    class TinyNets:
        @ce.hookimpl
        def captum_effnet_register_models(self, registry):
            registry.register("tiny_cnn", lambda **kw: nn.Sequential(
                nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                nn.Flatten(), nn.Linear(4, 3)), resolution=32)

    ce.register_plugin(TinyNets(), name="tiny_cnns")
    try:
        status = main(["explain", str(photos / "coffee.png"), "--model", "tiny_cnn",
                       "--out", str(tmp_path), "--format", "json"])
    finally:
        ce.unregister_plugin("tiny_cnns")
    assert status == 0, capsys.readouterr().err
    record = json.loads(capsys.readouterr().out)
    assert record["model"] == "tiny_cnn" and record["weights"] is None
    assert record["top_k"][0]["label"].startswith("class ")  # no class names known
    with Image.open(record["outputs"]["png"]) as img:
        assert img.size[0] > 100
