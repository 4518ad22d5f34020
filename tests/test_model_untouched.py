"""Attribution leaves the user's model exactly as it was.

For every registered attribution (``captum_effnet.list_attributions()``) and
for ``ImageClassifier.fit/predict``: parameters and buffers (batch-norm
running statistics included, also in train mode), every submodule's
train/eval flag, ``requires_grad`` flags, ``.grad`` (a sentinel stays, ``None``
stays ``None``), and the hook dictionaries of every submodule (the user's own
hook stays, nothing is added) and torch's global module hooks.
"""

from __future__ import annotations

import pytest
import torch
from _bad_inputs import Tiny
from torch import nn
from torch.nn.modules import module as torch_module

import captum_effnet as ce
from captum_effnet.inspection import ImageClassifier, to_patches

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
              "_backward_pre_hooks", "_forward_hooks_with_kwargs",
              "_forward_pre_hooks_with_kwargs", "_state_dict_hooks",
              "_load_state_dict_pre_hooks")
GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks",
                "_global_backward_hooks", "_global_backward_pre_hooks")


def snapshot(model: nn.Module) -> dict[str, object]:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "modes": {n: m.training for n, m in model.named_modules()},
        "flags": {n: p.requires_grad for n, p in model.named_parameters()},
        "grads": {n: None if p.grad is None else p.grad.clone()
                  for n, p in model.named_parameters()},
        "hooks": {(n, d): list(getattr(m, d, {}))
                  for n, m in model.named_modules() for d in HOOK_DICTS},
        "global": {d: list(getattr(torch_module, d)) for d in GLOBAL_HOOKS},
        "grad_enabled": torch.is_grad_enabled(),
    }


def assert_same(before: dict, after: dict) -> None:
    for key in ("modes", "flags", "hooks", "global", "grad_enabled"):
        assert before[key] == after[key], key
    assert before["state"].keys() == after["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), f"state {k} changed"
    for k, g in before["grads"].items():
        h = after["grads"][k]
        assert (g is None and h is None) or (g is not None and h is not None
                                             and torch.equal(g, h)), f".grad of {k}"


def prepared(model: nn.Module, train: bool) -> nn.Module:
    """A model as a user might hand it over: a hook, a frozen and a used parameter."""
    model.train(train)
    if train:  # one submodule deliberately left in the other mode
        next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d)).eval()
    first = next(model.parameters())
    first.grad = torch.full_like(first, 7.0)  # as if a training step had run
    list(model.parameters())[-1].requires_grad_(False)
    model.register_forward_hook(lambda mod, inp, out: None)
    return model


def moved(model: nn.Module, train: bool) -> bool:
    """The oracle: a plain train-mode forward does change this model's buffers."""
    x = torch.rand(4, 3, 16, 16)
    before = snapshot(model)
    with torch.no_grad():
        model(x)
    changed = any(not torch.equal(v, model.state_dict()[k])
                  for k, v in before["state"].items())
    model.load_state_dict(before["state"])
    return changed


MODELS = {
    "tiny": lambda: Tiny(num_classes=3),
    "efficientnet(-4)": lambda: ce.efficientnet(-4, num_classes=3),
}


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("name", ce.list_attributions())
def test_every_registered_attribution_leaves_the_model_as_it_was(name, model_name, train):
    torch.manual_seed(0)
    model = prepared(MODELS[model_name](), train)
    if train:
        assert moved(model, train)  # so the buffer checks below can fail
    x = torch.rand(3, 3, 16, 16)
    before = snapshot(model)
    cls = ce.get_attribution(name)
    kwargs = {"grid": 2} if name == "permutation" else {}
    out = cls(model).attribute(x, target=1, **kwargs)
    assert torch.isfinite(out).all()
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_image_classifier_fit_predict_leave_the_model_as_it_was(train):
    torch.manual_seed(0)
    model = prepared(Tiny(num_classes=3), train)
    X = to_patches(torch.rand(6, 3, 16, 16), grid=2)
    before = snapshot(model)
    clf = ImageClassifier(model, grid=2).fit(X)
    clf.predict(X)
    clf.predict_proba(X)
    assert_same(before, snapshot(model))
