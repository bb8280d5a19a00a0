"""EASE in clbench beside LAMDA-PILOT's EASE on the same inputs (issue 31, items 1 and 2):
the forward pass of a three-subspace state and one training step of a new subspace.

    .venv/bin/python benchmarks/parity_vs_official.py --pilot LAMDA-PILOT \\
        --official-python PILOT-VENV/bin/python --methods ease ease-step

PILOT's EASE (models/ease.py ``Learner``, utils/inc_net.py ``EaseNet``,
backbone/vit_ease.py) runs in a copy of a local checkout at 2647455 with the listed
changes (``changes()``: ViT-B/16 narrowed to ViT-Tiny and loading the benchmark's seeded
ViT-Tiny file, the width the reweighted logits assume narrowed with it), in the Python of
an environment with timm 0.6.13 (PILOT imports timm 0.6 modules that timm 1.x no longer
has); clbench's side runs here. Our driver in the copy (``added_module``) calls the
Learner's own methods in the order ``incremental_train`` and ``after_task`` call them,
replacing only the data manager and its loaders by the given tensors (pixels normalised
with mean = std = 0.5, as clbench's backend normalises for ViT-Tiny).

Forward: three sessions, each a subspace of drawn (non-zero) adapter weights in place of
its training, and each session's images. Both sides build the prototypes themselves (real
ones for the session's classes in every subspace so far, the semantic-guided complement
for old classes in newer subspaces, recomputed each session) and score a test batch.
Compared: each subspace's features, their concatenation, the real and the complemented
prototypes, the reweighted logits, the predicted classes.

Step: after a first session of drawn adapters, one SGD step of the second session's
training (fresh adapters and cosine head as clbench builds them, the session's classes
relabelled from 0, cross-entropy; learning rate, momentum and weight decay each side's
own config) on one batch. Dropout off on both sides: PILOT's adapters hard-code p=0.1 and
its ``_init_train`` switches train mode on itself, so our driver sets the adapters'
``dropout`` attribute to 0; clbench runs with ``adapter_dropout=0``. Compared: every
adapter tensor of the new subspace and the cosine head (weight, scale) after the step,
against the largest change the official step makes (adapters and head apart), and the
finished subspace, which must not move at all.

clbench's side runs the strategy itself (``Ease.train``, ``Ease.logits``, ``Ease.embed``).
Two names of the plugin are patched while it runs: ``clbench_zoo.ease.train_adapters``
returns the drawn adapters for a session whose training the check replaces (the real
function runs for the stepped session), and ``clbench_zoo.adaptation`` records the
adapter set and head that ``train_adapters`` builds (the same objects, unchanged), so
that the official side starts from exactly them.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from pathlib import Path

import torch
from official_runtime import Substitution, _heads, _width
from parity_common import (
    FIXTURES,
    FORWARD_TOLERANCE,
    VIT_DEPTH,
    VIT_SEED,
    VIT_WIDTH,
    prepare_copy,
    relative_difference,
    run_official,
    tensors_sha256,
    update_sketch,
    vit_backend,
)

SOURCE = "https://github.com/sun-hailong/LAMDA-PILOT at 2647455"
ADDED_MODULE = "utils/clbench_parity_ease.py"

# an adapter's tensors in clbench (Adapter) and in PILOT (vit_ease.Adapter)
PILOT_NAMES = {"down.weight": "down_proj.weight", "down.bias": "down_proj.bias",
               "up.weight": "up_proj.weight", "up.bias": "up_proj.bias"}  # fmt: skip


def changes() -> tuple[Substitution, ...]:
    """What PILOT's EASE needs to run on the benchmark's ViT-Tiny file on a CPU."""
    return (
        Substitution(
            "backbone/vit_ease.py",
            'timm.create_model("vit_base_patch16_224", pretrained=True, num_classes=0)',
            "vit_tiny()",
            1,
            "EASE's ViT copies its weights from the benchmark's ViT-Tiny file (vit_tiny in the "
            f"added {ADDED_MODULE}), not from ViT-B/16 on the hub",
        ),
        Substitution(
            "backbone/vit_ease.py",
            "import timm\n",
            "import timm\nfrom utils.clbench_parity_ease import vit_tiny\n",
            1,
            "imports that loader",
        ),
        _width("backbone/vit_ease.py", 19, "the ViT builders, the checkpoint's q/k/v split"),
        _heads("backbone/vit_ease.py", 3),
        _width("utils/inc_net.py", 19, "the adapters' d_model, out_dim"),
        _width(
            "backbone/linears.py",
            1,
            "the subspace width EaseCosineLinear.forward_reweight assumes by default, which "
            "EaseNet.forward does not pass: left at 768 it finds no subspace in ViT-Tiny's "
            "192 per subspace",
        ),
    )


def added_module(vit: Path) -> str:
    """Our driver in the PILOT copy: the ViT-Tiny loader and the forward and step checks,
    each calling the Learner's own methods in the order a PILOT run calls them."""
    return f'''"""Added by clbench's benchmarks/parity_ease.py; not the official code."""

import json
import sys
from types import SimpleNamespace

import timm
import torch

VIT_WEIGHTS = {str(vit)!r}


def vit_tiny(num_classes=0):
    """timm's ViT-Tiny holding VIT_WEIGHTS: what EASE's ViT copies its weights from."""
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes)
    model.load_state_dict(torch.load(VIT_WEIGHTS, map_location="cpu"))
    return model


def learner(classes, **overrides):
    """PILOT's EASE Learner with exps/ease.json, sessions of ``classes`` classes, on the CPU."""
    from models.ease import Learner

    with open("exps/ease.json") as file:
        args = json.load(file)
    args.update(device=[torch.device("cpu")], init_cls=classes, increment=classes, **overrides)
    return Learner(args)


def begin_session(ease, classes, adapters):
    """incremental_train up to its _train: the task counter, the grown heads (update_fc);
    then the session's adapters, given (drawn or a fresh start) in place of training."""
    ease._cur_task += 1
    ease._total_classes = ease._known_classes + classes
    ease._network.update_fc(ease._total_classes)
    ease._network.backbone.cur_adapter.load_state_dict(adapters)


def normalise(images):
    return (images.float() / 255 - 0.5) / 0.5


def forward(inputs, out):
    """Sessions of drawn subspaces: after each, incremental_train's replace_fc (real
    prototypes, then solve_sim_reset's complement) and, but for the last, after_task;
    then the test batch as _eval_cnn scores it (forward with test=True)."""
    given = torch.load(inputs)
    sessions = given["sessions"]
    ease = learner(len(sessions[0]["classes"]))
    for index, session in enumerate(sessions):
        begin_session(ease, len(session["classes"]), session["adapters"])
        ease.train_dataset_for_protonet = SimpleNamespace(labels=session["labels"].numpy())
        ease.replace_fc([(None, normalise(session["images"]), session["labels"])])
        if index < len(sessions) - 1:
            ease.after_task()
    net = ease._network.eval()
    x = normalise(given["images"])
    with torch.no_grad():
        output = net(x, test=True)
        subspaces = [net.backbone.forward_proto(x, adapt_index=i) for i in range(len(sessions))]
    torch.save({{"logits": output["logits"].clone(), "features": output["features"].clone(),
                "subspaces": torch.stack(subspaces).clone(),
                "prototypes": net.fc.weight.detach().clone()}}, out)
    print("CLBENCH-PARITY " + json.dumps({{"classes": int(net.fc.out_features)}}))


def step(inputs, out):
    """A first session of drawn adapters, then the second session's training (_train:
    get_optimizer, get_scheduler, _init_train) for one epoch of one batch, from the
    given adapters and proxy head; the adapters' dropout set to 0."""
    given = torch.load(inputs)
    classes = given["classes"]
    ease = learner(classes, init_epochs=1, later_epochs=1, batch_size=len(given["labels"]))
    begin_session(ease, classes, given["first"])
    ease.after_task()
    begin_session(ease, classes, given["adapters"])
    net = ease._network
    with torch.no_grad():
        net.proxy_fc.weight.copy_(given["head"]["weight"])
        net.proxy_fc.sigma.copy_(given["head"]["sigma"])
    for adapter in net.backbone.cur_adapter:
        adapter.dropout = 0.0
    ease._train([(None, normalise(given["images"]), given["labels"])], None)
    state = lambda module: {{k: v.detach().clone() for k, v in module.state_dict().items()}}
    torch.save({{"adapters": state(net.backbone.cur_adapter),
                "first": state(net.backbone.adapter_list[0]),
                "head": {{"weight": net.proxy_fc.weight.detach().clone(),
                         "sigma": net.proxy_fc.sigma.detach().clone()}}}}, out)
    print("CLBENCH-PARITY " + json.dumps({{"tensors": len(net.backbone.cur_adapter.state_dict())}}))


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[-1]))
    {{"forward": forward, "step": step}}[sys.argv[1]](sys.argv[2], sys.argv[3])
'''


def prepare(checkout: Path, dest: Path, vit: Path) -> None:
    """A fresh copy of the checkout with every change and our driver."""
    prepare_copy(checkout, dest, changes(), ADDED_MODULE, added_module(vit))


# --- inputs -----------------------------------------------------------------------------
# small enough for the tests to run in seconds: every image through every subspace is a
# full ViT-Tiny forward at 224 px
FORWARD_SEED, SESSIONS, CLASSES, PER_CLASS, TEST_IMAGES = 1, 3, 2, 2, 2
STEP_SEED, STEP_CLASSES, STEP_PER_CLASS = 2, 3, 2


def _images(classes: int, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """uint8 images, each class a colour of its own plus noise, so that classes (and so
    the complement's similarities) differ more than random noise through a random ViT."""
    colour = torch.randint(32, 224, (classes, 1, 3, 1, 1), generator=generator)
    noise = torch.randint(-32, 33, (classes, per_class, 3, 224, 224), generator=generator)
    return (colour + noise).clamp(0, 255).to(torch.uint8).flatten(0, 1)


def _drawn_adapters(generator: torch.Generator, bottleneck: int) -> dict[str, torch.Tensor]:
    """One subspace's adapters in PILOT's names (``<block>.down_proj.weight`` ...), every
    tensor drawn: a fresh set's zero up-projection would hide any difference."""
    shapes = {"down_proj.weight": (bottleneck, VIT_WIDTH), "down_proj.bias": (bottleneck,),
              "up_proj.weight": (VIT_WIDTH, bottleneck), "up_proj.bias": (VIT_WIDTH,)}  # fmt: skip
    return {f"{block}.{name}": torch.randn(shape, generator=generator) * 0.1
            for block in range(VIT_DEPTH) for name, shape in shapes.items()}  # fmt: skip


def _stream(sessions: int, classes: int):
    from cl_bench.data.experience import StreamInfo

    order = [tuple(range(s * classes, (s + 1) * classes)) for s in range(sessions)]
    return StreamInfo("parity-ease", tuple(map(str, range(sessions * classes))), tuple(order), 224)


def _experience(index: int, classes: int, images: torch.Tensor, per_class: int):
    from cl_bench.data.experience import Experience

    labels = torch.arange(index * classes, (index + 1) * classes).repeat_interleave(per_class)
    return Experience(index, tuple(range(index * classes, (index + 1) * classes)), images, labels)


def forward_inputs(work: Path) -> Path:
    """The sessions (images, labels, drawn adapters in PILOT's names) and the test batch,
    seeded; the adapters' bottleneck is clbench's EASE default."""
    from clbench_zoo.ease import EaseConfig

    generator = torch.Generator().manual_seed(FORWARD_SEED)
    sessions, bottleneck = [], EaseConfig().bottleneck
    for index in range(SESSIONS):
        experience = _experience(index, CLASSES, _images(CLASSES, PER_CLASS, generator), PER_CLASS)
        sessions.append({"classes": experience.classes, "images": experience.images,
                         "labels": experience.labels,
                         "adapters": _drawn_adapters(generator, bottleneck)})  # fmt: skip
    images = _images(TEST_IMAGES, 1, generator)
    path = work / "ease_forward_inputs.pt"
    torch.save({"sessions": sessions, "images": images}, path)
    return path


def forward_sha256(vit: Path, inputs: Path) -> str:
    """One checksum of the ViT file and every seeded input of the forward check."""
    given = torch.load(inputs)
    images = {f"images.{i}": s["images"] for i, s in enumerate(given["sessions"])}
    adapters = {f"{i}.{k}": v for i, s in enumerate(given["sessions"])
                for k, v in s["adapters"].items()}  # fmt: skip
    return tensors_sha256(torch.load(vit), {"test": given["images"], **images}, adapters)


# --- clbench's side ---------------------------------------------------------------------
def _load(adapters, given: dict[str, torch.Tensor]) -> None:
    for block in adapters.blocks:
        adapters.at(block).load_state_dict(
            {ours: given[f"{block}.{theirs}"] for ours, theirs in PILOT_NAMES.items()}
        )


def _pilot_names(adapters) -> dict[str, torch.Tensor]:
    """An AdapterSet's tensors under PILOT's names (``<block>.down_proj.weight`` ...)."""
    return {f"{block}.{PILOT_NAMES[key]}": value.detach().clone()
            for block in adapters.blocks
            for key, value in adapters.at(block).state_dict().items()}  # fmt: skip


@contextmanager
def _sessions_replaced(drawn: dict[int, dict[str, torch.Tensor]]):
    """While it lasts, EASE's ``train_adapters`` returns the drawn adapters (PILOT's names)
    for the sessions in ``drawn`` (counted from 0), as train_adapters returns a trained
    set (frozen, eval mode, the config's adapter shape); other sessions train for real."""
    from unittest import mock

    import clbench_zoo.ease as ease_module

    from cl_bench.models.adapters import AdapterConfig, AdapterSet

    real, calls = ease_module.train_adapters, []

    def train_adapters(backbone, images, labels, classes, config, *args, **kwargs):
        session = len(calls)
        calls.append(session)
        if session not in drawn:
            return real(backbone, images, labels, classes, config, *args, **kwargs)
        shape = AdapterConfig(bottleneck=config.bottleneck, scale=config.adapter_scale,
                              dropout=config.adapter_dropout, init="lora")  # fmt: skip
        adapters = AdapterSet.build(backbone.view, range(len(backbone.view)), shape)
        _load(adapters, drawn[session])
        adapters.eval().requires_grad_(False)
        return adapters

    with mock.patch.object(ease_module, "train_adapters", train_adapters):
        yield


def _ease(vit: Path, config, seed: int, sessions: int, classes: int):
    from clbench_zoo.ease import Ease

    from cl_bench.training.strategy import Runtime

    return Ease(backbone=vit_backend(vit), stream=_stream(sessions, classes), config=config,
                runtime=Runtime(torch.device("cpu"), seed))  # fmt: skip


def clbench_ease(vit: Path, inputs: Path) -> dict[str, torch.Tensor]:
    """clbench's EASE through the same sessions (Ease.train, its training replaced by the
    drawn adapters) and the test batch: the concatenated features (Ease.embed) and each
    subspace's part of them, prototypes, logits (Ease.logits); and the frozen network's
    features of the test batch."""
    from clbench_zoo.ease import EaseConfig

    given = torch.load(inputs)
    sessions = given["sessions"]
    ease = _ease(vit, EaseConfig(), FORWARD_SEED, len(sessions), len(sessions[0]["classes"]))
    with _sessions_replaced({i: s["adapters"] for i, s in enumerate(sessions)}):
        for index, session in enumerate(sessions):
            ease.train(_experience(index, len(session["classes"]), session["images"], PER_CLASS))
    images = given["images"]
    with torch.no_grad():
        features = ease.embed(images)
        return {
            "subspaces": torch.stack(features.split(ease.backbone.num_features, dim=1)),
            "features": features,
            "prototypes": ease.prototypes_.clone(),
            "logits": ease.logits(images),
            "frozen": ease.backbone.features(images),
        }


def frozen_gap(frozen: torch.Tensor, subspaces: torch.Tensor) -> float:
    """How far the frozen network alone is from the nearest official subspace's features
    (relative): a check that cannot pass without the adapters."""
    return min(relative_difference(frozen, theirs)[1] for theirs in subspaces)


def _complemented(sessions: int, classes: int) -> torch.Tensor:
    """class x subspace: True where the prototype is synthesised (a class older than the
    subspace), False where it is a class mean."""
    session_of_class = torch.arange(sessions).repeat_interleave(classes)
    return session_of_class[:, None] < torch.arange(sessions)[None, :]


def forward_comparison(ours: dict, theirs: dict, sessions: int, classes: int) -> dict:
    """name -> figures, for every quantity the forward check compares."""
    compared = {}
    for index in range(sessions):
        a, b = relative_difference(ours["subspaces"][index], theirs["subspaces"][index])
        compared[f"subspace {index} features"] = {"max_abs_difference": a,
                                                  "max_relative_difference": b}  # fmt: skip
    official_prototypes = theirs["prototypes"].view(sessions * classes, sessions, VIT_WIDTH)
    synthesised = _complemented(sessions, classes)
    pairs = {
        "concatenated features": (ours["features"], theirs["features"]),
        "real prototypes (class means)": (ours["prototypes"][~synthesised],
                                          official_prototypes[~synthesised]),
        "complemented prototypes (semantic-guided)": (ours["prototypes"][synthesised],
                                                      official_prototypes[synthesised]),
        "logits (reweighted cosines)": (ours["logits"], theirs["logits"]),
    }  # fmt: skip
    for name, (a, b) in pairs.items():
        difference, relative = relative_difference(a, b)
        compared[name] = {"max_abs_difference": difference, "max_relative_difference": relative}
    agree = int((ours["logits"].argmax(1) == theirs["logits"].argmax(1)).sum())
    compared["predicted class"] = {"agreement": f"{agree}/{len(theirs['logits'])} images"}
    return compared


def _worst(compared: dict) -> tuple[float, float]:
    figures = [v for v in compared.values() if "max_relative_difference" in v]
    return (max(v["max_abs_difference"] for v in figures),
            max(v["max_relative_difference"] for v in figures))  # fmt: skip


def forward_check(copy: Path, python: str, vit: Path, work: Path, threads: int) -> dict:
    inputs = forward_inputs(work)
    out = work / "ease_forward_official.pt"
    args = ["forward", str(inputs), str(out)]
    run_official(python, copy, ADDED_MODULE, args, threads, work / "ease-forward-pilot.log")
    theirs = torch.load(out)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    torch.save({**{f"official_{k}": v for k, v in theirs.items()},
                "inputs_sha256": forward_sha256(vit, inputs), "source": SOURCE},
               FIXTURES / "ease_forward.pt")  # fmt: skip
    ours = clbench_ease(vit, inputs)
    compared = forward_comparison(ours, theirs, SESSIONS, CLASSES)
    difference, relative = _worst(compared)
    every = f"{TEST_IMAGES}/{TEST_IMAGES} images"
    agrees = relative <= FORWARD_TOLERANCE and compared["predicted class"]["agreement"] == every
    return {
        "kind": "forward equivalence (per-subspace and concatenated features, prototypes "
        "with the semantic-guided complement, reweighted logits)",
        "official": SOURCE,
        "setting": f"ViT-Tiny (random, seed {VIT_SEED}), EASE after {SESSIONS} sessions of "
        f"{CLASSES} classes ({PER_CLASS} images each), each session's adapters at all "
        f"{VIT_DEPTH} blocks drawn in place of training, prototypes and complement built by "
        f"each side, {TEST_IMAGES} test images of 224 px, float32, CPU",
        "max_abs_difference": difference,
        "max_relative_difference": relative,
        "adapters_move_features_by": frozen_gap(ours["frozen"], theirs["subspaces"]),
        "tolerance": FORWARD_TOLERANCE,
        "verdict": "agrees" if agrees else "differs",
        "explanation": "",
        "compared": compared,
    }


# --- step equivalence -------------------------------------------------------------------
@contextmanager
def _recording(starts: dict):
    """While it lasts, the adapter set and cosine head that ``train_adapters`` builds are
    recorded as built (clones of their tensors in ``starts``) and kept (``starts["built"]``);
    they are the same objects, unchanged."""
    from unittest import mock

    import clbench_zoo.adaptation as adaptation

    adapter_set, cosine_head = adaptation.AdapterSet, adaptation.CosineHead

    class RecordedSet:
        @staticmethod
        def build(*args, **kwargs):
            adapters = adapter_set.build(*args, **kwargs)
            starts.setdefault("adapters", []).append(_pilot_names(adapters))
            return adapters

    def head(*args, **kwargs):
        built = cosine_head(*args, **kwargs)
        starts.setdefault("head", []).append(
            {"weight": built.weight.detach().clone(), "sigma": built.sigma.detach().clone()}
        )
        starts.setdefault("built", []).append(built)
        return built

    with mock.patch.object(adaptation, "AdapterSet", RecordedSet), \
            mock.patch.object(adaptation, "CosineHead", head):  # fmt: skip
        yield


def clbench_ease_step(vit: Path, work: Path) -> tuple[Path, dict]:
    """clbench's EASE through a first session (drawn adapters) and a second one trained
    for exactly one step (one epoch of one batch, dropout off): the inputs file holds
    what that training started from, for PILOT's side; returns it and clbench's tensors
    after the step (the new subspace, the head, the first subspace)."""
    from clbench_zoo.ease import EaseConfig

    images_per_session = STEP_CLASSES * STEP_PER_CLASS
    config = dataclasses.replace(EaseConfig(), epochs=1, batch_size=images_per_session,
                                 adapter_dropout=0.0)  # fmt: skip
    generator = torch.Generator().manual_seed(STEP_SEED)
    first = _drawn_adapters(generator, config.bottleneck)
    experiences = [
        _experience(i, STEP_CLASSES, _images(STEP_CLASSES, STEP_PER_CLASS, generator),
                    STEP_PER_CLASS)
        for i in range(2)
    ]  # fmt: skip
    torch.manual_seed(STEP_SEED)  # the fresh adapters' initialisation draws from it
    ease = _ease(vit, config, STEP_SEED, 2, STEP_CLASSES)
    starts: dict = {}
    with _sessions_replaced({0: first}), _recording(starts):
        for experience in experiences:
            ease.train(experience)
    [start], [head_start], [head] = starts["adapters"], starts["head"], starts["built"]
    inputs = work / "ease_step_inputs.pt"
    torch.save({"images": experiences[1].images, "labels": experiences[1].labels,
                "classes": STEP_CLASSES, "first": first, "adapters": start,
                "head": head_start}, inputs)  # fmt: skip
    after = {"adapters": _pilot_names(ease.adapters_[1]), "first": _pilot_names(ease.adapters_[0]),
             "head": {"weight": head.weight.detach().clone(),
                      "sigma": head.sigma.detach().clone()}}  # fmt: skip
    return inputs, after


def step_sha256(vit: Path, inputs: Path) -> str:
    given = torch.load(inputs)
    return tensors_sha256(torch.load(vit), {"images": given["images"]}, given["first"],
                          given["adapters"], given["head"])  # fmt: skip


def _trained(state: dict) -> dict[str, torch.Tensor]:
    """The trained tensors of a step, flat: the new subspace's adapters and the head."""
    return {**state["adapters"], **{f"head.{k}": v for k, v in state["head"].items()}}


def step_comparison(start: dict, ours: dict, theirs: dict) -> tuple[dict, dict]:
    """(name -> figures, largest official update per group): the new subspace's adapters
    and the head, each against the largest change the official step makes to its group;
    the finished subspace against the drawn weights it must keep exactly."""
    groups = {
        "new subspace adapters": sorted(start["adapters"]),
        "cosine head (weight, sigma)": [f"head.{k}" for k in sorted(start["head"])],
    }
    before, a, b = _trained(start), _trained(ours), _trained(theirs)
    compared, largest = {}, {}
    for group, keys in groups.items():
        largest[group] = max((b[k] - before[k]).abs().max().item() for k in keys)
        difference = max((a[k] - b[k]).abs().max().item() for k in keys)
        compared[group] = {"max_abs_difference": difference,
                           "max_relative_difference": difference / largest[group],
                           "tensors": len(keys)}  # fmt: skip
    compared["finished subspace (must not move)"] = {
        f"moved_{side}": max((state["first"][k] - start["first"][k]).abs().max().item()
                             for k in start["first"])
        for side, state in (("clbench", ours), ("official", theirs))
    }  # fmt: skip
    return compared, largest


def step_check(copy: Path, python: str, vit: Path, work: Path, threads: int) -> dict:
    inputs, ours = clbench_ease_step(vit, work)
    out = work / "ease_step_official.pt"
    args = ["step", str(inputs), str(out)]
    run_official(python, copy, ADDED_MODULE, args, threads, work / "ease-step-pilot.log")
    theirs, given = torch.load(out), torch.load(inputs)
    start = {"adapters": given["adapters"], "head": given["head"], "first": given["first"]}
    compared, largest = step_comparison(start, ours, theirs)
    torch.save({"official_update_sketch": update_sketch(start["adapters"], theirs["adapters"]),
                "official_head": theirs["head"], "inputs_sha256": step_sha256(vit, inputs),
                "source": SOURCE}, FIXTURES / "ease_step.pt")  # fmt: skip
    difference, relative = _worst(compared)
    still = all(v == 0 for v in compared["finished subspace (must not move)"].values())
    return {
        "kind": "step equivalence (one SGD step of a new subspace: every adapter tensor and "
        "the cosine head)",
        "official": SOURCE,
        "setting": f"ViT-Tiny (random, seed {VIT_SEED}), EASE's second session after a first "
        f"of drawn adapters, from the same fresh adapters and cosine head, "
        f"{STEP_CLASSES * STEP_PER_CLASS} images of {STEP_CLASSES} classes, one batch, "
        "each side's own lr, momentum and weight decay, dropout off on both sides, float32, "
        "CPU",
        "max_abs_difference": difference,
        "max_relative_difference": relative,
        "relative_to": "the largest change the official step makes to the tensors' group "
        "(adapters; head)",
        "largest_official_update": largest["new subspace adapters"],
        "largest_official_head_update": largest["cosine head (weight, sigma)"],
        "tensors": sum(v.get("tensors", 0) for v in compared.values()),
        "tolerance": FORWARD_TOLERANCE,
        "verdict": "agrees" if relative <= FORWARD_TOLERANCE and still else "differs",
        "explanation": "",
        "compared": compared,
    }
