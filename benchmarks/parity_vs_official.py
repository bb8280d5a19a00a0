"""clbench beside the official code on the same inputs (issue 31): accuracy parity of the
frozen-feature methods with LAMDA-PILOT, and the time each side takes.

    .venv/bin/python benchmarks/parity_vs_official.py --pilot LAMDA-PILOT \\
        --official-python PILOT-VENV/bin/python [--seed 1993] [--threads 1] \\
        [--methods simplecil ranpac fecam] [--work DIR]
    .venv/bin/python benchmarks/parity_vs_official.py --list-changes

LAMDA-PILOT is a local checkout at 2647455 (``git -C LAMDA-PILOT archive 2647455 | tar -x
-C DEST``); nothing is fetched at run time and no official code is copied into clbench.
PILOT imports timm 0.6 modules that timm 1.x no longer has, so it runs in an environment
of its own with what its README pins, at the first timm that imports on Python 3.11
(timm 0.6.13; 0.6.12 fails on a dataclass default), and torch as clbench's.

The inputs are clbench's own, handed to both sides: the offline default's prepared
images (64 px, 3,021 training and 856 test images of 50 classes), its spec-order labels
and split, exported once to an ``.npz``; and the pretrained EfficientNet-Lite0 that
clbench serves (the packaged checkpoint in timm's ``tf_efficientnet_lite0``), exported
once to a timm state-dict file that clbench loads with ``--weights`` and PILOT builds
with timm and loads (a backbone entry added to PILOT's ``get_backbone``). Both sides
normalise with the same statistics (mean = std = 0.5),
draw the class order as ``np.random.permutation(50)`` after ``np.random.seed(seed)``, and
split 5 classes then 5 per task. PILOT's learners run unchanged but for the listed
changes (``--list-changes``); the loop that drives them is PILOT's ``trainer._train``
without its log files, written here.

Per method the script writes the accuracy after every task on both sides, their largest
gap, the verdict against the issue's tolerance, and each side's wall time (a child
process each, alone, with the same thread count) to ``benchmarks/results/parity.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_vs_official import child_env, run_measured
from official_runtime import ChangeDoesNotApply, Substitution
from parity_common import (
    FIXTURES,
    FORWARD_TOLERANCE,
    RESULTS,
    ROOT,
    VIT_DEPTH,
    VIT_SEED,
    VIT_WIDTH,
    export_vit,
    inputs_sha256,
    prepare_copy,
    update_sketch,
    vit_backend,
)

PILOT_SOURCE = "https://github.com/sun-hailong/LAMDA-PILOT at 2647455"
ADDED_MODULE = "utils/clbench_parity.py"
STREAM, BACKBONE, INCREMENT = "offline-mix", "efficientnet_lite0", 5


@dataclass(frozen=True)
class Method:
    """One method on both sides: PILOT's config and what the comparison sets in it, the
    clbench strategy and its ``--set``s, and the largest gap (points) that is parity."""

    strategy: str
    pilot_config: str
    pilot_overrides: dict[str, tuple[Any, str]]
    clbench_sets: tuple[str, ...]
    tolerance: float
    explanation: str = ""  # what separates the two sides, as diagnose_parity.py measured


_NO_ADAPTATION = (0, "no first-session adaptation: the frozen backbone on both sides")
METHODS = {
    "simplecil": Method("simplecil", "exps/simplecil.json", {}, (), 0.1),
    "ranpac": Method(
        "ranpac",
        "exps/ranpac.json",
        {"tuned_epoch": _NO_ADAPTATION},
        ("adapt_first_session=false",),
        1.0,
        "the random projection W (each side draws its own) and PILOT's cosine logits, on "
        "few test images early on (83 at task 1: one image is 1.2 points): with "
        "clbench's own steps, three draws of W alone move task 1 from 89.2 to 90.4 and "
        "the last task from 68.2 to 70.1, and PILOT's cosine logits move the curve by up "
        "to 2.2 points (benchmarks/diagnose_parity.py); from task 3 on the two sides are "
        "within 1 point, 0.94 at the end",
    ),
    "fecam": Method(
        "fecam",
        "exps/fecam.json",
        {"tuned_epoch": _NO_ADAPTATION},
        (),
        1.0,
        "the classifier: PILOT's is not the FeCAM authors' (no Tukey transform, raw "
        "covariance + 100 I, torch.corrcoef of it, pseudo-inverse); written out on "
        "clbench's features it gives PILOT's curve to the last digit "
        "(benchmarks/diagnose_parity.py), while the first task, before any covariance "
        "matters much, agrees exactly",
    ),
}


def changes() -> tuple[Substitution, ...]:
    """The changes PILOT needs to run on clbench's inputs, on a CPU, in one process."""
    workers = tuple(
        Substitution(f"models/{name}.py", "num_workers = 8", "num_workers = 0", 1,
                     "DataLoader workers 0: all work in the measured process, as clbench")
        for name in ("simplecil", "ranpac", "fecam")
    )  # fmt: skip
    zero_epochs = tuple(
        Substitution(
            f"models/{name}.py",
            f"{indent}self._init_train(train_loader, test_loader, optimizer, scheduler)",
            f"{indent}if self.args['tuned_epoch'] > 0:  # clbench parity: no adaptation\n"
            f"{indent}    self._init_train(train_loader, test_loader, optimizer, scheduler)",
            1,
            "first-session training skipped at `tuned_epoch: 0`: PILOT's `_init_train` logs "
            "a variable that only its epoch loop sets (UnboundLocalError with no epochs) "
            "and does nothing else",
        )
        for name, indent in (("ranpac", " " * 12), ("fecam", " " * 16))
    )
    tiny = (
        Substitution(
            "backbone/vit_adapter.py",
            'checkpoint_model=timm.create_model("vit_base_patch16_224", pretrained=True, '
            "num_classes=0)",
            "checkpoint_model=vit_tiny()",
            1,
            "APER's ViT copies its weights from the benchmark's ViT-Tiny file (vit_tiny in the "
            f"added {ADDED_MODULE}), not from ViT-B/16 on the hub",
        ),
        Substitution(
            "backbone/vit_adapter.py",
            "import timm\n",
            "import timm\nfrom utils.clbench_parity import vit_tiny\n",
            1,
            "imports that loader",
        ),
        Substitution(
            "backbone/vit_adapter.py",
            "768",
            "192",
            20,
            "ViT-B/16's width 768 -> ViT-Tiny's 192 (builders, q/k/v split)",
        ),
        Substitution(
            "backbone/vit_adapter.py",
            "num_heads=12",
            "num_heads=3",
            4,
            "ViT-B/16's 12 attention heads -> ViT-Tiny's 3",
        ),
        Substitution(
            "utils/inc_net.py",
            "768",
            "192",
            19,
            "ViT-B/16's width 768 -> ViT-Tiny's 192 (adapter d_model, out_dim)",
        ),
    )
    return (
        *tiny,
        Substitution(
            "utils/data_manager.py",
            '    elif name == "vtab":\n        return vtab()\n',
            '    elif name == "vtab":\n        return vtab()\n'
            '    elif name == "clbench_parity":\n'
            "        from utils.clbench_parity import PreparedStream\n"
            "        return PreparedStream()\n",
            1,
            f"registers clbench's exported stream as data set `clbench_parity` (class "
            f"PreparedStream in the added {ADDED_MODULE})",
        ),
        Substitution(
            "utils/inc_net.py",
            '    name = args["backbone_type"].lower()\n',
            '    name = args["backbone_type"].lower()\n'
            '    if name == "clbench_efficientnet_lite0":\n'
            "        from utils.clbench_parity import efficientnet_lite0\n"
            "        return efficientnet_lite0()\n",
            1,
            "the backbone `clbench_efficientnet_lite0`: timm's EfficientNet-Lite0 holding the "
            f"exported weights (efficientnet_lite0 in the added {ADDED_MODULE})",
        ),
        *workers,
        *zero_epochs,
    )


def added_module(data: Path, weights: Path, vit_weights: Path) -> str:
    """Our module in the PILOT copy: the exported stream as a PILOT data set, the
    backbone, and the loop that drives a learner (PILOT's trainer._train, no log files)."""
    return f'''"""Added by clbench's benchmarks/parity_vs_official.py; not the official code."""

import json
import sys
import time

import numpy as np
import timm
import torch
from torchvision import transforms

from utils.data import iData

DATA = {str(data)!r}
WEIGHTS = {str(weights)!r}
VIT_WEIGHTS = {str(vit_weights)!r}


class PreparedStream(iData):
    """clbench's prepared images (uint8, HWC) and spec-order labels, normalised as clbench
    normalises them for EfficientNet-Lite0; no augmentation."""

    use_path = False
    train_trsf = []
    test_trsf = []
    common_trsf = [transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)]

    def download_data(self):
        arrays = np.load(DATA)
        self.train_data, self.train_targets = arrays["train_x"], arrays["train_y"]
        self.test_data, self.test_targets = arrays["test_x"], arrays["test_y"]
        self.class_order = list(range(int(arrays["classes"])))


def efficientnet_lite0():
    """timm's TF-padded EfficientNet-Lite0 (the architecture clbench maps the packaged
    weights into) holding WEIGHTS, without its classifier: pooled 1280-d features."""
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    missing, unexpected = model.load_state_dict(torch.load(WEIGHTS, map_location="cpu"),
                                                strict=False)
    if missing or set(unexpected) != {{"classifier.weight", "classifier.bias"}}:
        raise RuntimeError(f"{{WEIGHTS}} does not fit: {{missing}} {{unexpected}}")
    model.out_dim = model.num_features
    return model.eval()


def vit_tiny(num_classes=0):
    """timm's ViT-Tiny holding VIT_WEIGHTS: what PILOT's ViT builders copy their weights
    from (in place of ViT-B/16 from the hub)."""
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes)
    model.load_state_dict(torch.load(VIT_WEIGHTS, map_location="cpu"))
    return model


def forward(inputs, out):
    """APER's adapted ViT-Tiny (PILOT's get_backbone, AdaptFormer at every block) holding
    the adapter weights of ``inputs``, on its images: the pooled features to ``out``."""
    from utils.inc_net import get_backbone

    given = torch.load(inputs)
    args = {{"backbone_type": "pretrained_vit_b16_224_adapter", "model_name": "aper_adapter",
            "ffn_num": given["bottleneck"]}}
    backbone = get_backbone(args).eval()
    missing, unexpected = backbone.load_state_dict(given["adapters"], strict=False)
    adapter_keys = {{k for k in backbone.state_dict() if ".adaptmlp." in k}}
    if unexpected or adapter_keys - set(given["adapters"]):
        raise RuntimeError(f"adapter weights do not fit: {{unexpected}} {{adapter_keys}}")
    x = (given["images"].float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        torch.save({{"features": backbone(x)}}, out)
    print("CLBENCH-PARITY " + json.dumps({{"features": out}}))


def step(inputs, out):
    """One SGD step of PILOT's APER first-session training (aper_adapter.py _init_train:
    SimpleVitNet, cosine fc, SGD over every parameter that requires grad, cross-entropy)
    from the given adapter and head weights; dropout off (eval mode), as on clbench's
    side. Saves every adapter tensor after the step."""
    from torch.nn import functional as F

    from utils.inc_net import SimpleVitNet

    given = torch.load(inputs)
    args = {{"backbone_type": "pretrained_vit_b16_224_adapter", "model_name": "aper_adapter",
            "ffn_num": given["bottleneck"], "device": [torch.device("cpu")]}}
    net = SimpleVitNet(args, True)
    net.update_fc(given["classes"])
    missing, unexpected = net.backbone.load_state_dict(given["adapters"], strict=False)
    if unexpected:
        raise RuntimeError(f"adapter weights do not fit: {{unexpected}}")
    with torch.no_grad():
        net.fc.weight.copy_(given["head"])
        net.fc.sigma.fill_(1.0)
    net.eval()
    optimizer = torch.optim.SGD(net.parameters(), momentum=given["momentum"], lr=given["lr"],
                                weight_decay=given["weight_decay"])
    x = (given["images"].float() / 255 - 0.5) / 0.5
    loss = F.cross_entropy(net(x)["logits"], given["labels"])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    after = {{k: v.detach().clone() for k, v in net.backbone.state_dict().items()
             if ".adaptmlp." in k}}
    torch.save({{"adapters": after, "loss": loss.item()}}, out)
    print("CLBENCH-PARITY " + json.dumps({{"loss": loss.item()}}))


def run(config):
    import trainer
    from utils import factory
    from utils.data_manager import DataManager

    args = json.loads(open(config).read())
    args["seed"] = args["seed"][0]
    trainer._set_random(args["seed"])
    trainer._set_device(args)
    start = time.perf_counter()
    manager = DataManager(args["dataset"], args["shuffle"], args["seed"], args["init_cls"],
                          args["increment"], args)
    args["nb_classes"], args["nb_tasks"] = manager.nb_classes, manager.nb_tasks
    learner = factory.get_model(args["model_name"], args)
    curve = []
    for _ in range(manager.nb_tasks):
        learner.incremental_train(manager)
        cnn, _ = learner.eval_task()
        learner.after_task()
        curve.append(float(cnn["top1"]))
    seconds = time.perf_counter() - start
    print("CLBENCH-PARITY " + json.dumps({{"curve": curve, "seconds": seconds}}))


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[-1]))
    if sys.argv[1] == "forward":
        forward(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "step":
        step(sys.argv[2], sys.argv[3])
    else:
        run(sys.argv[2])
'''


# The adapter methods' forward and step checks, each in a module of its own: the module,
# the checkout it runs (the option that names it) and the official code's name.
ADAPTER_CHECKS = {
    "sema": ("parity_sema", "sema", "SEMA-CL"),
    "mos": ("parity_mos", "mos", "AAAI25-MOS"),
    "ease": ("parity_ease", "pilot", "LAMDA-PILOT (EASE)"),
}


def describe() -> str:
    return "\n\n".join([_describe_pilot(), *map(_describe_checks, ADAPTER_CHECKS)])


def _describe_checks(method: str) -> str:
    """The changes one adapter method's forward and step checks make to its official code."""
    module_name, _, title = ADAPTER_CHECKS[method]
    module = importlib.import_module(module_name)
    lines = [f"**{title}** ({module.SOURCE}), for {method}'s forward and step checks "
             f"(`benchmarks/{module_name}.py`):", ""]  # fmt: skip
    for change in module.changes():
        lines.append(f"- `{change.path}`: {change.why} (x{change.count})")
    lines.append(f"- added `{module.ADDED_MODULE}` (ours): the ViT-Tiny loader and the "
                 "drivers of the forward pass and the training step")  # fmt: skip
    return "\n".join(lines)


def _describe_pilot() -> str:
    lines = [f"**LAMDA-PILOT** ({PILOT_SOURCE}), each method's config with `dataset: "
             "clbench_parity`, `backbone_type: clbench_efficientnet_lite0`, `init_cls` and "
             f"`increment` {INCREMENT}, `device: [-1]`, the run seed, and:", ""]  # fmt: skip
    for name, method in METHODS.items():
        sets = ", ".join(f"`{k}: {v}` ({why})" for k, (v, why) in method.pilot_overrides.items())
        lines.append(f"- `{name}` (`{method.pilot_config}`): {sets or 'nothing else'}")
    lines += ["", "and these changes to the code:", ""]
    for change in changes():
        lines.append(f"- `{change.path}`: {change.why} (x{change.count})")
    lines.append(
        f"- added `{ADDED_MODULE}` (ours): the data set, the Lite0 and ViT-Tiny loaders, "
        "and the drivers of a run, a forward pass and a training step"
    )
    return "\n".join(lines)


# --- inputs --------------------------------------------------------------------------------
def export_inputs(work: Path) -> tuple[Path, Path]:
    """clbench's prepared offline default as arrays, and its Lite0 weights as a file."""
    from cl_bench.data.prepared import prepare
    from cl_bench.models.backbones.base import BackboneOptions
    from cl_bench.models.backbones.packaged import EFFICIENTNET_LITE0
    from cl_bench.training.registry import Registry

    registry = Registry.discover()
    spec = registry.stream(STREAM)
    data = prepare(spec)
    images = data.images.permute(0, 2, 3, 1).numpy()  # HWC, as PIL reads them
    labels, test = data.labels.numpy(), data.is_test.numpy()
    arrays = work / "stream.npz"
    np.savez(arrays, train_x=images[~test], train_y=labels[~test], test_x=images[test],
             test_y=labels[test], classes=len(data.class_names))  # fmt: skip
    # the packaged checkpoint in timm's key names, classifier kept (clbench's --weights
    # takes a whole checkpoint); PILOT's side drops the classifier, as clbench does
    backbone = EFFICIENTNET_LITE0.load(BackboneOptions(), keep_classifier=True)
    weights = work / "efficientnet_lite0.pth"
    torch.save(backbone.model.state_dict(), weights)
    return arrays, weights


def prepare_pilot(checkout: Path, dest: Path, data: Path, weights: Path, vit: Path) -> None:
    prepare_copy(checkout, dest, changes(), ADDED_MODULE, added_module(data, weights, vit))


# --- forward equivalence: APER's adapted ViT -----------------------------------------------
FORWARD_SEED, FORWARD_IMAGES = 1, 4


def forward_inputs(work: Path) -> Path:
    """Images, and adapter weights in PILOT's names, for both sides: every adapter is
    drawn (not the zero up-projection of a fresh one, which would hide any difference)
    with clbench's APER bottleneck, so that adapters and frozen blocks both matter."""
    from clbench_zoo.aper import Aper

    bottleneck = Aper.Config().bottleneck
    generator = torch.Generator().manual_seed(FORWARD_SEED)
    images = torch.randint(0, 256, (FORWARD_IMAGES, 3, 224, 224), generator=generator,
                           dtype=torch.uint8)  # fmt: skip
    shapes = {"down_proj.weight": (bottleneck, VIT_WIDTH), "down_proj.bias": (bottleneck,),
              "up_proj.weight": (VIT_WIDTH, bottleneck), "up_proj.bias": (VIT_WIDTH,)}  # fmt: skip
    adapters = {f"blocks.{block}.adaptmlp.{name}": torch.randn(shape, generator=generator) * 0.1
                for block in range(VIT_DEPTH) for name, shape in shapes.items()}  # fmt: skip
    path = work / "aper_forward_inputs.pt"
    torch.save({"images": images, "adapters": adapters, "bottleneck": bottleneck}, path)
    return path


# an adapter's tensors in clbench (Adapter) and in PILOT (AdaptFormer's adaptmlp)
PILOT_NAMES = {"down.weight": "down_proj.weight", "down.bias": "down_proj.bias",
               "up.weight": "up_proj.weight", "up.bias": "up_proj.bias"}  # fmt: skip


def clbench_aper_features(vit_weights: Path, inputs: Path) -> torch.Tensor:
    """The same images through clbench's backend with APER's adapters (its Config) holding
    the same weights."""
    from clbench_zoo.aper import Aper

    from cl_bench.models.adapters import AdapterConfig, AdapterSet

    given = torch.load(inputs)
    config = Aper.Config()
    backend = vit_backend(vit_weights)
    adapters = AdapterSet.build(backend.view, range(VIT_DEPTH), AdapterConfig(
        bottleneck=config.bottleneck, scale=config.adapter_scale,
        dropout=config.adapter_dropout))  # fmt: skip
    for block in range(VIT_DEPTH):
        prefix = f"blocks.{block}.adaptmlp."
        adapters.at(block).load_state_dict(
            {ours: given["adapters"][prefix + theirs] for ours, theirs in PILOT_NAMES.items()}
        )
    with torch.no_grad():
        return backend.forward(given["images"], adapters.eval())


def forward_check(copy: Path, python: str, vit: Path, work: Path, threads: int) -> dict:
    inputs = forward_inputs(work)
    out, log = work / "aper_forward_official.pt", work / "aper-forward-pilot.log"
    argv = [python, ADDED_MODULE, "forward", str(inputs), str(out), str(threads)]
    run_measured(argv, copy, child_env(threads, {"PYTHONPATH": str(copy)}), log)
    theirs = torch.load(out)["features"].clone()  # its own storage, not the token tensor
    # the official output, for tests/test_parity.py (numbers only: no official code)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    torch.save({"official_features": theirs, "inputs_sha256": inputs_sha256(vit, inputs),
                "source": PILOT_SOURCE}, FIXTURES / "aper_forward.pt")  # fmt: skip
    ours = clbench_aper_features(vit, inputs)
    difference = (ours - theirs).abs().max().item()
    relative = difference / theirs.abs().max().item()
    frozen = clbench_frozen_gap(vit, inputs, theirs)
    return {
        "kind": "forward equivalence (features)",
        "official": PILOT_SOURCE,
        "setting": f"ViT-Tiny (random, seed {VIT_SEED}), APER's adapters at all "
        f"{VIT_DEPTH} blocks with drawn weights, {FORWARD_IMAGES} images of 224 px, float32, CPU",
        "max_abs_difference": difference,
        "max_relative_difference": relative,
        "adapters_move_features_by": frozen,
        "tolerance": FORWARD_TOLERANCE,
        "verdict": "agrees" if relative <= FORWARD_TOLERANCE else "differs",
    }


def clbench_frozen_gap(vit: Path, inputs: Path, theirs: torch.Tensor) -> float:
    """How far the adapters move the features (relative): a check that cannot pass on
    the frozen network alone."""
    frozen = vit_backend(vit).features(torch.load(inputs)["images"])
    return ((frozen - theirs).abs().max() / theirs.abs().max()).item()


# --- step equivalence: one step of APER's first-session training ----------------------------
STEP_SEED, STEP_IMAGES, STEP_CLASSES = 2, 8, 4


def _pilot_names(adapters) -> dict[str, torch.Tensor]:
    """An AdapterSet's tensors under PILOT's names (blocks.i.adaptmlp.{down,up}_proj.*)."""
    return {
        f"blocks.{block}.adaptmlp.{PILOT_NAMES[key]}": value.detach().clone()
        for block in adapters.blocks
        for key, value in adapters.at(block).state_dict().items()
    }


def clbench_aper_step(vit: Path, work: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """clbench's own first-session training (clbench_zoo.adaptation.train_adapters) for
    exactly one step (one epoch of one batch), dropout off; the inputs file holds what
    it starts from (its adapters and cosine head, rebuilt from the same seeds) for
    PILOT's side. Returns that file and clbench's adapters after the step."""
    import dataclasses

    from clbench_zoo.adaptation import CosineHead, train_adapters
    from clbench_zoo.aper import Aper

    from cl_bench.models.adapters import AdapterConfig, AdapterSet
    from cl_bench.training.strategy import Runtime

    backend = vit_backend(vit)
    config = dataclasses.replace(Aper.Config(), epochs=1, batch_size=STEP_IMAGES,
                                 adapter_dropout=0.0)  # fmt: skip
    generator = torch.Generator().manual_seed(STEP_SEED)
    images = torch.randint(0, 256, (STEP_IMAGES, 3, 224, 224), generator=generator,
                           dtype=torch.uint8)  # fmt: skip
    labels = torch.arange(STEP_IMAGES) % STEP_CLASSES
    # what train_adapters starts from: the same constructors with the same RNG states
    torch.manual_seed(STEP_SEED)
    fresh = AdapterConfig(bottleneck=config.bottleneck, scale=config.adapter_scale,
                          dropout=0.0, init="lora")  # fmt: skip
    start = AdapterSet.build(backend.view, range(VIT_DEPTH), fresh)
    head = CosineHead(VIT_WIDTH, STEP_CLASSES, Runtime(torch.device("cpu"), STEP_SEED).generator)
    inputs = work / "aper_step_inputs.pt"
    torch.save({"images": images, "labels": labels, "adapters": _pilot_names(start),
                "head": head.weight.detach().clone(), "classes": STEP_CLASSES,
                "bottleneck": config.bottleneck, "lr": config.lr, "momentum": config.momentum,
                "weight_decay": config.weight_decay}, inputs)  # fmt: skip
    torch.manual_seed(STEP_SEED)
    runtime = Runtime(torch.device("cpu"), STEP_SEED)
    trained = train_adapters(backend, images, labels, STEP_CLASSES, config, runtime, "step")
    return inputs, _pilot_names(trained)


def step_check(copy: Path, python: str, vit: Path, work: Path, threads: int) -> dict:
    inputs, ours = clbench_aper_step(vit, work)
    out, log = work / "aper_step_official.pt", work / "aper-step-pilot.log"
    argv = [python, ADDED_MODULE, "step", str(inputs), str(out), str(threads)]
    run_measured(argv, copy, child_env(threads, {"PYTHONPATH": str(copy)}), log)
    theirs = torch.load(out)["adapters"]
    start = torch.load(inputs)["adapters"]
    largest_update = max((theirs[k] - start[k]).abs().max().item() for k in start)
    differences = {k: (ours[k] - theirs[k]).abs().max().item() for k in start}
    worst = max(differences, key=differences.__getitem__)
    relative = differences[worst] / largest_update
    torch.save({"official_update_sketch": update_sketch(start, theirs),
                "inputs_sha256": inputs_sha256(vit, inputs), "source": PILOT_SOURCE},
               FIXTURES / "aper_step.pt")  # fmt: skip
    return {
        "kind": "step equivalence (one SGD step, every adapter tensor)",
        "official": PILOT_SOURCE,
        "setting": f"ViT-Tiny (random, seed {VIT_SEED}), APER's first-session training "
        f"from the same adapters and cosine head, {STEP_IMAGES} images of {STEP_CLASSES} "
        "classes, one batch, dropout off on both sides, float32, CPU",
        "max_abs_difference": differences[worst],
        "max_relative_difference": relative,
        "relative_to": "the largest change the official step makes to any adapter tensor",
        "largest_official_update": largest_update,
        "tensors": len(start),
        "tolerance": FORWARD_TOLERANCE,
        "verdict": "agrees" if relative <= FORWARD_TOLERANCE else "differs",
    }


# --- the two sides ---------------------------------------------------------------------
def run_pilot(method: Method, copy: Path, python: str, seed: int, threads: int, log: Path) -> dict:
    config = json.loads((copy / method.pilot_config).read_text())
    config.update(dataset="clbench_parity", backbone_type="clbench_efficientnet_lite0",
                  init_cls=INCREMENT, increment=INCREMENT, device=[-1], seed=[seed],
                  shuffle=True)  # fmt: skip
    config.update({key: value for key, (value, _) in method.pilot_overrides.items()})
    path = copy / "exps" / f"clbench_parity_{method.strategy}.json"
    path.write_text(json.dumps(config, indent=4))
    argv = [python, ADDED_MODULE, "run", str(path.relative_to(copy)), str(threads)]
    env = child_env(threads, {"PYTHONPATH": str(copy)})
    wall, rss = run_measured(argv, copy, env, log)
    [line] = [x for x in log.read_text().splitlines() if x.startswith("CLBENCH-PARITY ")]
    result = json.loads(line.removeprefix("CLBENCH-PARITY "))
    return {"curve": result["curve"], "wall_s": wall, "peak_rss_mib": rss}


def run_clbench(method: Method, weights: Path, seed: int, threads: int, work: Path,
                log: Path) -> dict:  # fmt: skip
    output = work / "runs"
    if output.exists():
        shutil.rmtree(output)
    argv = [sys.executable, "-m", "cl_bench", "evaluate", "--strategy", method.strategy,
            "--stream", STREAM, "--backbone", BACKBONE, "--weights", str(weights),
            "--seed", str(seed), "--device", "cpu", "--threads", str(threads),
            "--no-cache", "--output", str(output)]  # fmt: skip
    for assignment in method.clbench_sets:
        argv += ["--set", assignment]
    wall, rss = run_measured(argv, ROOT, child_env(threads), log)
    [record] = output.rglob("seed*.json")
    curve = json.loads(record.read_text())["metrics"]["accuracy_curve"]
    return {"curve": curve, "wall_s": wall, "peak_rss_mib": rss}


def verdict(method: Method, ours: list[float], theirs: list[float]) -> dict:
    gaps = [abs(a - b) for a, b in zip(ours, theirs, strict=True)]
    agrees = max(gaps) <= method.tolerance
    return {
        "largest_gap": round(max(gaps), 3),
        "tolerance": method.tolerance,
        "verdict": "agrees" if agrees else "differs",
        "explanation": method.explanation,
    }


def adapter_checks(method: str, module_name: str, checkout: Path, vit: Path,
                   args: argparse.Namespace, wanted: list[str]) -> dict[str, dict]:  # fmt: skip
    """One adapter method's forward and/or step check against its official code, in a
    copy of that code made for them."""
    module = importlib.import_module(module_name)
    copy = args.work / f"{method}-official"
    try:
        module.prepare(checkout, copy, vit)
    except ChangeDoesNotApply as error:
        raise SystemExit(f"{method}: {error}") from None
    results = {}
    for name in wanted:
        check = module.step_check if name.endswith("-step") else module.forward_check
        entry = check(copy, args.official_python, vit, args.work, args.threads)
        results[name] = entry
        print(f"{name}: {entry['max_relative_difference']:.2e} relative: {entry['verdict']}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pilot", type=Path, help="LAMDA-PILOT checkout at 2647455")
    parser.add_argument("--sema", type=Path, help="SEMA-CL checkout at 5a45512")
    parser.add_argument("--mos", type=Path, help="AAAI25-MOS checkout at 8d5e07c")
    checks = [f"{m}{kind}" for m in ("aper", *ADAPTER_CHECKS) for kind in ("", "-step")]
    parser.add_argument("--methods", nargs="+", choices=[*METHODS, *checks],
                        default=[*METHODS, *checks])  # fmt: skip
    parser.add_argument("--seed", type=int, default=1993)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/clbench-parity"))
    parser.add_argument("--list-changes", action="store_true")
    parser.add_argument(
        "--official-python",
        default=sys.executable,
        help="the Python of an environment with what the official code needs: timm 0.6 "
        "(PILOT pins 0.6.12), easydict, scipy, tqdm",
    )
    args = parser.parse_args()
    if args.list_changes:
        print(describe())
        return
    checkouts = {"pilot": args.pilot, "sema": args.sema, "mos": args.mos}
    for method in args.methods:
        needed = ADAPTER_CHECKS.get(method.removesuffix("-step"), (None, "pilot"))[1]
        if checkouts[needed] is None:
            parser.error(f"{method} needs --{needed} (a checkout of the official code), or "
                         "leave it out of --methods")  # fmt: skip
    args.work.mkdir(parents=True, exist_ok=True)
    vit = export_vit(args.work)
    copy = args.work / "pilot"
    if {*METHODS, "aper", "aper-step"} & set(args.methods):  # PILOT's runs on our inputs
        data, weights = export_inputs(args.work)
        try:
            prepare_pilot(args.pilot, copy, data, weights, vit)
        except ChangeDoesNotApply as error:
            raise SystemExit(str(error)) from None
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if "aper" in args.methods:
        entry = forward_check(copy, args.official_python, vit, args.work, args.threads)
        results["aper"] = entry
        print(f"aper: features differ by {entry['max_relative_difference']:.2e} (relative; "
              f"the adapters move them by {entry['adapters_move_features_by']:.2e}): "
              f"{entry['verdict']}")  # fmt: skip
    if "aper-step" in args.methods:
        entry = step_check(copy, args.official_python, vit, args.work, args.threads)
        results["aper-step"] = entry
        print(
            f"aper step: adapters differ by {entry['max_relative_difference']:.2e} of the "
            f"largest update ({entry['largest_official_update']:.2e}): {entry['verdict']}"
        )
    for method, (module_name, checkout, _) in ADAPTER_CHECKS.items():
        wanted = [m for m in (method, f"{method}-step") if m in args.methods]
        if wanted:
            results.update(adapter_checks(method, module_name, checkouts[checkout], vit, args,
                                          wanted))  # fmt: skip
    for name in [m for m in args.methods if m in METHODS]:
        method = METHODS[name]
        log = args.work / f"{name}-pilot.log"
        theirs = run_pilot(method, copy, args.official_python, args.seed, args.threads, log)
        ours = run_clbench(method, weights, args.seed, args.threads, args.work,
                           args.work / f"{name}-clbench.log")  # fmt: skip
        entry = {
            "kind": "accuracy parity on real features",
            "official": PILOT_SOURCE,
            "setting": f"{STREAM}, {BACKBONE} (pretrained, frozen), seed {args.seed}, "
            f"B0 Inc{INCREMENT}, {args.threads} thread(s), CPU",
            "clbench_sets": list(method.clbench_sets),
            "pilot_overrides": {k: v for k, (v, _) in method.pilot_overrides.items()},
            "clbench": ours,
            "official_code": theirs,
            **verdict(method, ours["curve"], theirs["curve"]),
        }
        results[name] = entry
        print(f"{name}: last {ours['curve'][-1]:.2f} (clbench) vs {theirs['curve'][-1]:.2f} "
              f"(PILOT), largest gap {entry['largest_gap']:.2f}: {entry['verdict']}; "
              f"{ours['wall_s']:.1f} s vs {theirs['wall_s']:.1f} s")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
