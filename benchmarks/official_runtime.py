"""The run-time changes that let the papers' official SEMA-CL and AAAI25-MOS code, and
LAMDA-PILOT's APER and EASE, do bench_vs_official.py's work on a CPU, kept as data so
that they can be printed (``--list-changes``) and quoted in docs/benchmarks/speed.md
exactly as applied.

A change is an exact text substitution with the number of times its text must occur, or
a module of ours added to the copy; a checkout whose text differs (another commit) stops
with the file, the text and the count found, never with a half-changed copy. The
official code itself is never copied into this repository: a substitution names only the
few characters it replaces, and the added module is written here.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADDED_MODULE = "utils/clbench_bench.py"  # the data set and the weights loader, ours


@dataclass(frozen=True)
class Substitution:
    """Replace ``old`` by ``new`` in ``path``, where ``old`` occurs exactly ``count`` times."""

    path: str
    old: str
    new: str
    count: int
    why: str


@dataclass(frozen=True)
class Official:
    """One official code base: what it is, how it runs, and what the benchmark changes."""

    name: str
    strategy: str  # the clbench strategy that implements the same method
    source: str  # repository and commit the substitutions were written against
    config: str  # the official config the run starts from
    overrides: dict[str, Any]  # config keys the benchmark sets, each with its reason
    substitutions: tuple[Substitution, ...]
    clbench_sets: tuple[str, ...]  # the same schedule for clbench, as --set assignments
    refuse_if_present: dict[str, str] = field(default_factory=dict)  # path -> why


class ChangeDoesNotApply(RuntimeError):
    """The checkout's text is not what a substitution was written against."""


# The two edits every PILOT-family code base needs to read our image folder: the data
# set is our class (in ADDED_MODULE), registered beside the code's own data sets.
def _dataset_entry() -> Substitution:
    return Substitution(
        "utils/data_manager.py",
        '    elif name == "vtab":\n        return vtab()\n',
        '    elif name == "vtab":\n        return vtab()\n'
        '    elif name == "clbench_clipart":\n'
        "        from utils.clbench_bench import ClipArt\n"
        "        return ClipArt(args)\n",
        1,
        "registers the benchmark's image folder as data set `clbench_clipart` (class "
        f"ClipArt in the added {ADDED_MODULE})",
    )


def _weights(path: str, call: str, num_classes: str) -> tuple[Substitution, Substitution]:
    return (
        Substitution(
            path,
            call,
            f"vit_tiny(num_classes={num_classes})",
            1,
            "builds timm's ViT-Tiny and loads the benchmark's weights file (vit_tiny in the "
            f"added {ADDED_MODULE}) instead of downloading ViT-B/16 from the hub",
        ),
        Substitution(
            path,
            "import timm\n",
            "import timm\nfrom utils.clbench_bench import vit_tiny\n",
            1,
            "imports that loader",
        ),
    )


def _width(path: str, count: int, where: str) -> Substitution:
    return Substitution(
        path, "768", "192", count, f"ViT-B/16's width 768 -> ViT-Tiny's 192 ({where})"
    )


def _heads(path: str, count: int) -> Substitution:
    return Substitution(
        path,
        "num_heads=12",
        "num_heads=3",
        count,
        "ViT-B/16's 12 attention heads -> ViT-Tiny's 3 (depth 12 and MLP ratio 4 are the same)",
    )


def _in_process(path: str, old: str, new: str) -> Substitution:
    return Substitution(
        path,
        old,
        new,
        1,
        "DataLoader workers 0: images are decoded in the measured process, as clbench "
        "does, so that its wall time and peak RSS cover all the work and it keeps to the "
        "2 threads (worker processes are neither)",
    )


_CPU = "CPU: the code's own switch (trainer._set_device maps -1 to torch.device('cpu'))"
_DATA = "the benchmark's image folder (our data set entry)"
_SPLIT = "5 classes, then 5 per task (4 tasks): clbench's --initial-classes 5 --increment 5"
_SEED = "the run seed; the class order is np.random.permutation with it on both sides"

SEMA = Official(
    name="SEMA",
    strategy="sema",
    source="https://github.com/saptarshi2000/SEMA-CL at 5a45512 (2025-04-22, 'code for SEMA')",
    config="exps/sema_cifar.json",
    overrides={
        "dataset": ("clbench_clipart", _DATA),
        "init_cls": (5, _SPLIT),
        "increment": (5, _SPLIT),
        "device": ([-1], _CPU),
        "seed": ([1993], _SEED),
        "func_epoch": (1, "schedule cut to 1 epoch (official 5)"),
        "rd_epoch": (1, "schedule cut to 1 epoch (official 20)"),
    },
    substitutions=(
        _dataset_entry(),
        *_weights(
            "backbone/vit_sema.py",
            'timm.create_model("vit_base_patch16_224", pretrained=True, num_classes=0)',
            "0",
        ),
        _width("backbone/vit_sema.py", 21, "the ViT builders, the checkpoint's q/k/v split"),
        _heads("backbone/vit_sema.py", 3),
        _width("utils/inc_net.py", 16, "the adapters' d_model, out_dim"),
        _width("models/sema.py", 1, "the input of the linear head"),
        Substitution(
            "backbone/sema_block.py",
            ".cuda()",
            ".to(device)",
            3,
            "the routers are created on the GPU unconditionally; `device` is the module's "
            "own ('cuda' if available, else 'cpu')",
        ),
        _in_process("models/sema.py", "num_workers = 8", "num_workers = 0"),
    ),
    clbench_sets=("func_epochs=1", "rd_epochs=1"),
    refuse_if_present={
        "models/novelty.py": (
            "this SEMA-CL is a 2026 rework (a novelty pre-check before expansion, and "
            "sema_cifar.json switched to an online 'blurry' task sampler), not the CVPR "
            "2025 code that clbench's sema follows; use commit 5a45512: "
            "git -C SEMA-CL archive 5a45512 | tar -x -C DEST"
        )
    },
)

MOS = Official(
    name="MOS",
    strategy="mos",
    source="https://github.com/sun-hailong/AAAI25-MOS at 8d5e07c (2025-04-17)",
    config="exps/mos_cifar.json",
    overrides={
        "dataset": ("clbench_clipart", _DATA),
        "init_cls": (5, _SPLIT),
        "increment": (5, _SPLIT),
        "device": ([-1], _CPU),
        "seed": ([1993], _SEED),
        "tuned_epoch": (1, "schedule cut to 1 epoch (official 20)"),
        "crct_epochs": (5, "classifier alignment cut to 5 epochs (official 30)"),
    },
    substitutions=(
        _dataset_entry(),
        *_weights(
            "backbone/vit_mos.py",
            'timm.create_model("vit_base_patch16_224", pretrained=True, '
            "num_classes=kwargs['num_classes'])",
            "kwargs['num_classes']",
        ),
        _width("backbone/vit_mos.py", 19, "the ViT builders, the checkpoint's q/k/v split"),
        _heads("backbone/vit_mos.py", 3),
        _width("utils/inc_net.py", 2, "the adapters' d_model, out_dim"),
        _in_process("models/mos.py", "num_workers = 8", "num_workers = 0"),
        _in_process("models/mos.py", "num_workers=4", "num_workers=0"),
    ),
    clbench_sets=("epochs=1", "alignment_epochs=5"),
)

PILOT_SOURCE = "https://github.com/sun-hailong/LAMDA-PILOT at 2647455"


def _pilot(name: str, strategy: str, config: str, model: str, backbone: str,
           schedule: tuple[str, ...], *more: Substitution) -> Official:  # fmt: skip
    """A LAMDA-PILOT learner (``models/<model>.py``) on the benchmark's work: its ViT
    builder (``backbone/<backbone>.py``) narrowed to ViT-Tiny and loading the
    benchmark's weights, the shared ``utils/inc_net.py`` narrowed too, DataLoader
    workers 0; the schedule cut to one epoch a session on both sides."""
    path = f"backbone/{backbone}.py"
    widths, heads = {"vit_adapter": 20, "vit_ease": 19}, {"vit_adapter": 4, "vit_ease": 3}
    return Official(
        name=name,
        strategy=strategy,
        source=PILOT_SOURCE,
        config=config,
        overrides={
            "dataset": ("clbench_clipart", _DATA),
            "init_cls": (5, _SPLIT),
            "increment": (5, _SPLIT),
            "device": ([-1], _CPU),
            "seed": ([1993], _SEED),
            **{key: (1, "schedule cut to 1 epoch (official 20)") for key in schedule},
        },
        substitutions=(
            _dataset_entry(),
            *_weights(
                path,
                'timm.create_model("vit_base_patch16_224", pretrained=True, num_classes=0)',
                "0",
            ),
            _width(path, widths[backbone], "the ViT builders, the checkpoint's q/k/v split"),
            _heads(path, heads[backbone]),
            _width("utils/inc_net.py", 19, "the adapters' d_model, out_dim"),
            _in_process(f"models/{model}.py", "num_workers = 8", "num_workers = 0"),
            *more,
        ),
        clbench_sets=("epochs=1",),
    )


# APER's second branch is the plain pretrained ViT, built in inc_net.py's get_backbone
APER = _pilot("APER", "aper", "exps/aper_aperpter.json", "aper_adapter", "vit_adapter",
              ("tuned_epoch",), *_weights("utils/inc_net.py", 'timm.create_model('
              '"vit_base_patch16_224",pretrained=True, num_classes=0)', "0"))  # fmt: skip
# EASE's reweighted logits split the features into subspaces of backbone/linears.py's width
EASE = _pilot("EASE", "ease", "exps/ease.json", "ease", "vit_ease",
              ("init_epochs", "later_epochs"),
              _width("backbone/linears.py", 1, "the subspace width of EASE's logits"))  # fmt: skip

OFFICIALS = {"sema": SEMA, "mos": MOS, "aper": APER, "ease": EASE}


def added_module(images: Path, weights: Path, augment: bool) -> str:
    """Our module in the copy: the image folder as a PILOT-style data set, and the
    ViT-Tiny loader. Training images get the code's own training transform
    (RandomResizedCrop + flip) when ``augment``, otherwise its evaluation transform
    (resize, centre crop): the recipe clbench runs with ``augment=true`` or ``false``."""
    return f'''"""Added by clbench's benchmarks/bench_vs_official.py; not the official code."""

import timm
import torch
from torchvision import datasets

from utils.data import build_transform, iData
from utils.toolkit import split_images_labels

IMAGES = {str(images)!r}
WEIGHTS = {str(weights)!r}


class ClipArt(iData):
    """IMAGES/train/<class>/*.png and IMAGES/test/<class>/*.png, classes in sorted order;
    training images get the {"training" if augment else "evaluation"} transform."""

    use_path = True

    def __init__(self, args):
        self.train_trsf = build_transform({augment!r}, args)
        self.test_trsf = build_transform(False, args)
        self.common_trsf = []

    def download_data(self):
        train, test = (datasets.ImageFolder(IMAGES + "/" + s) for s in ("train", "test"))
        assert train.classes == test.classes, "train/ and test/ hold different classes"
        self.class_order = list(range(len(train.classes)))
        self.train_data, self.train_targets = split_images_labels(train.imgs)
        self.test_data, self.test_targets = split_images_labels(test.imgs)


def vit_tiny(num_classes):
    """timm's ViT-Tiny holding WEIGHTS (a head, when asked for, stays as initialised)."""
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes)
    state = torch.load(WEIGHTS, map_location="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {{"head.weight", "head.bias"}}:
        raise RuntimeError(f"{{WEIGHTS}} does not fit ViT-Tiny: {{missing}} {{unexpected}}")
    return model
'''


def prepare(
    official: Official, checkout: Path, dest: Path, images: Path, weights: Path, augment: bool
) -> Path:
    """Copy ``checkout`` to ``dest`` (replacing it), apply every change, write the run's
    config; returns the config's path, relative to ``dest``."""
    for path, why in official.refuse_if_present.items():
        if (checkout / path).exists():
            raise ChangeDoesNotApply(f"{checkout}: {path} exists: {why}")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(checkout, dest, ignore=shutil.ignore_patterns(".git", "__pycache__", "logs"))
    for change in official.substitutions:
        substitute(dest, change)
    (dest / ADDED_MODULE).write_text(added_module(images, weights, augment))
    config = json.loads((dest / official.config).read_text())
    config.update({key: value for key, (value, _) in official.overrides.items()})
    run_config = Path("exps") / "clbench_bench.json"
    (dest / run_config).write_text(json.dumps(config, indent=4) + "\n")
    return run_config


def substitute(root: Path, change: Substitution) -> None:
    """Apply one change to the copy at ``root``, or stop naming the file and the count."""
    path = root / change.path
    if not path.is_file():
        raise ChangeDoesNotApply(f"{path}: no such file (expected in {root})")
    text = path.read_text()
    found = text.count(change.old)
    if found != change.count:
        raise ChangeDoesNotApply(
            f"{path}: expected {change.old!r} {change.count} time(s), found {found}; this "
            "checkout is not the code the benchmark's changes were written for"
        )
    path.write_text(text.replace(change.old, change.new))


def describe(official: Official) -> str:
    """The changes as Markdown, for --list-changes and docs/benchmarks/speed.md."""
    lines = [
        f"**{official.name}** ({official.source}), run as `python main.py --config "
        f"exps/clbench_bench.json`: `{official.config}` with",
        "",
    ]
    lines += [f"- `{key}`: `{json.dumps(value)}`: {why}" for key, (value, why)
              in official.overrides.items()]  # fmt: skip
    lines += ["", "and these changes to the code:", ""]
    for change in official.substitutions:
        if change.new.startswith(change.old):  # an addition after the matched text
            what = f"after `{_show(change.old)}` add `{_show(change.new[len(change.old) :])}`"
        else:
            what = f"`{_show(change.old)}` -> `{_show(change.new)}`"
        lines.append(f"- `{change.path}`: {what} (x{change.count}): {change.why}")
    lines.append(
        f"- added `{ADDED_MODULE}` (ours): the data set `ClipArt` and the loader `vit_tiny`"
    )
    return "\n".join(lines)


def _show(text: str) -> str:
    """A change's text on one line of the list: its lines stripped and joined by " / "."""
    lines = [line.strip() for line in text.strip("\n").splitlines()]
    return " / ".join(lines)
