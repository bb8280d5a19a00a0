"""SEMA beside its official code (issue 31, items 1 and 2): the same expanded model, the
same weights, the same images, on both sides.

    .venv/bin/python benchmarks/parity_vs_official.py --sema SEMA-CL \\
        --official-python OFFICIAL-VENV/bin/python --methods sema sema-step

SEMA-CL is a local checkout at 5a45512 (``git -C SEMA-CL archive 5a45512 | tar -x -C
DEST``), run from a temporary copy with the changes of ``changes()``: the substitutions
bench_vs_official.py already applies to run it on ViT-Tiny on a CPU (official_runtime.SEMA:
widths, heads, ``.cuda()``), the ViT weights from the benchmark's file, and a driver module
of ours (``added_module``). Its own code builds the model (``models.sema.Learner``), grows
it with its own ``add_adapter`` and ``end_of_task_training``, and takes its step with its
own ``update_*optimizer_and_scheduler`` and ``_init_train``. It needs easydict, which
clbench's environment lacks: it runs in the official environment (timm 0.6.13, torch as
clbench's; SEMA-CL pins timm 0.9.8, whose ViT-Tiny has the same state-dict keys).

The state compared is an expanded one (official names): blocks 0-8 hold one adapter each;
at the expandable blocks 9, 10, 11 the forward state holds 2, 1 and 3 adapters (expansions
at 9 and 11 in task 1, at 11 again in task 2), each with its descriptor and its loss
buffer, the routers fused as the official ``fix_router`` leaves them. Every tensor is drawn
(adapters' up-projections too), so adapters, routers and descriptors all matter.

Declared departures (the strategy's ``Origin``) and how each is handled here:
- inputs normalised for the backbone: both networks get the same normalised tensor
  (clbench's ``preprocess`` output); the official data pipeline would feed [0, 1] pixels;
- z-score with an epsilon (std + 1e-8): kept; it moves a z-score by 1e-8/std relative;
- descriptors standardise their input: off (centre 0, spread 1, as a descriptor is built,
  and ``fit_scale`` a no-op in the descriptor step); the step as clbench runs it, with the
  standardisation, is reported beside.

This check found a defect, since fixed: clbench fed a ViT's descriptors the summary of
the block's input, where SEMA-CL feeds them the adapters' input, the residual stream after
attention (``Block.forward`` -> ``SEMAModules`` -> ``AE.compute_reconstruction_loss``),
which both sides' routers read; the descriptors' losses differed by 2.6e-2 and their
z-scores by 0.36. clbench's descriptors now read ``ModelView.adapter_input`` (a CNN's
adapters read the block's input, so CNN runs did not change).
"""

from __future__ import annotations

from pathlib import Path

import torch
from official_runtime import SEMA, Substitution
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
    vit_backend,
)

SOURCE = "https://github.com/saptarshi2000/SEMA-CL at 5a45512"
ADDED_MODULE = "utils/clbench_parity_sema.py"
CLASSES, KNOWN = 10, 5  # all classes in the head; the first task's classes are masked
EXPANDABLE = (9, 10, 11)  # sema_cifar.json adapt_start_layer .. adapt_end_layer; clbench's last 3
RECORDED = 40  # losses in each descriptor's buffer (over 2, so z-scores are computed)
RUN_SEED = 0  # clbench's run seed (its shuffles)
RECORD_SCALE = 0.5  # about the drawn descriptors' losses, so that z-scores are moderate


def changes() -> tuple[Substitution, ...]:
    """bench_vs_official.py's changes for ViT-Tiny on a CPU, and our weights loader."""
    tiny = tuple(c for c in SEMA.substitutions if c.old in ("768", "num_heads=12", ".cuda()"))
    weights = (
        Substitution(
            "backbone/vit_sema.py",
            'timm.create_model("vit_base_patch16_224", pretrained=True, num_classes=0)',
            "vit_tiny()",
            1,
            "SEMA's ViT copies its weights from the benchmark's ViT-Tiny file (vit_tiny in "
            f"the added {ADDED_MODULE}), not from ViT-B/16 on the hub",
        ),
        Substitution(
            "backbone/vit_sema.py",
            "import timm\n",
            "import timm\nfrom utils.clbench_parity_sema import vit_tiny\n",
            1,
            "imports that loader",
        ),
    )
    return (*weights, *tiny)


def added_module(vit: Path) -> str:
    """Our driver in the copy: the official Learner in a given state, its forward with
    the routers' and the adapters' outputs caught by hooks, and one official step."""
    return f'''"""Added by clbench's benchmarks/parity_sema.py; not the official code."""

import json
import sys

import timm
import torch
from torch.utils.data import DataLoader

VIT_WEIGHTS = {str(vit)!r}


def vit_tiny():
    """timm's ViT-Tiny holding VIT_WEIGHTS: what vit_sema.py copies its weights from."""
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    model.load_state_dict(torch.load(VIT_WEIGHTS, map_location="cpu"))
    return model


def learner(given):
    """SEMA-CL's Learner (exps/sema_cifar.json) grown as the given history says: each
    task's expansions by add_adapter, each finished task closed by end_of_task_training
    (which fuses the routers), the loss buffers filled as they are filled in training;
    then the given weights loaded."""
    from models.sema import Learner

    with open("exps/sema_cifar.json") as f:
        args = json.load(f)
    args.update(device=[torch.device("cpu")], func_epoch=1, rd_epoch=1,
                batch_size=len(given["pixels"]))
    learner = Learner(args)
    net = learner._network
    net.fc = torch.nn.Linear(net.backbone.out_dim, given["classes"])  # as at task 0
    modules = [block.adapter_module for block in net.backbone.blocks]
    history = given["history"]
    for task, blocks in enumerate(history):
        for block in blocks:
            modules[block].add_adapter()
        for name, values in given["records"].items():
            block, k = map(int, name.split("."))
            if k < len(modules[block].adapters):
                record = modules[block].adapters[k].rd_loss_record
                if record.length == 0:
                    record.add_record(values)
        if task < len(history) - 1 or not given["open"]:
            for module in modules:
                module.end_of_task_training()
    missing, unexpected = net.load_state_dict(given["weights"], strict=False)
    start, end = args["adapt_start_layer"], args["adapt_end_layer"]
    unused = {{f"backbone.blocks.{{b}}.adapter_module.router.{{p}}"
              for b in range(len(modules)) if not start <= b <= end for p in ("weight", "bias")}}
    left = [k for k in missing
            if ("adapter_module" in k or k.startswith("fc.")) and k not in unused]
    if unexpected or left:
        raise RuntimeError(f"the given weights do not fit: {{unexpected}} {{left}}")
    learner._cur_task = len(history) - 1
    learner._known_classes, learner._total_classes = given["known"], given["classes"]
    return learner, modules, range(start, end + 1)


def forward(inputs, out):
    """The official forward (eval mode) on the given pixels: logits, features, and at
    each expandable block the router's softmax and every adapter's (loss, z-score)."""
    given = torch.load(inputs)
    learner_, modules, expandable = learner(given)
    net = learner_._network.eval()
    caught = {{}}

    def catch(key):
        return lambda module, args, output: caught.__setitem__(key, output)

    for block in expandable:
        modules[block].router.register_forward_hook(catch(f"router.{{block}}"))
        for k, adapter in enumerate(modules[block].adapters):
            adapter.register_forward_hook(catch(f"{{block}}.{{k}}"))
    with torch.no_grad():
        outcome = net(given["pixels"])
    result = {{"features": outcome["features"], "logits": outcome["logits"]}}
    for block in expandable:
        # the mask SEMAModules.forward computes: torch.softmax(logits, dim=1)
        result[f"routing.{{block}}"] = torch.softmax(caught[f"router.{{block}}"], dim=1)
        for k in range(len(modules[block].adapters)):
            _, rd_loss, z_score = caught[f"{{block}}.{{k}}"]
            result[f"loss.{{block}}.{{k}}"], result[f"z.{{block}}.{{k}}"] = rd_loss, z_score
    torch.save({{k: v.detach().clone() for k, v in result.items()}}, out)
    print("CLBENCH-PARITY " + json.dumps({{"out": out, "keys": sorted(result)}}))


def step(inputs, out, phase):
    """One epoch of one batch of the official training phase ("func" or "rd") from the
    given state: the tensors its optimiser holds, after the step."""
    given = torch.load(inputs)
    learner_, _, _ = learner(given)
    order = given["order"]  # clbench's draw for its one batch: the same batch, same order
    images, labels = given["pixels"][order], given["labels"][order]
    loader = DataLoader(list(zip(range(len(labels)), images, labels)), batch_size=len(labels),
                        shuffle=False)
    if phase == "func":
        learner_.update_optimizer_and_scheduler(num_epoch=1, lr=learner_.init_lr)
        optimiser, scheduler = learner_.optimizer, learner_.scheduler
    else:
        learner_.update_rd_optimizer_and_scheduler(num_epoch=1, lr=learner_.args["rd_lr"])
        optimiser, scheduler = learner_.rd_optimizer, learner_.rd_scheduler
    learner_._init_train(1, loader, loader, optimiser, scheduler, phase=phase)
    names = {{id(p): n for n, p in learner_._network.named_parameters()}}
    trained = {{names[id(p)]: p.detach().clone() for group in optimiser.param_groups
               for p in group["params"]}}
    torch.save(trained, out)
    print("CLBENCH-PARITY " + json.dumps({{"out": out, "trained": sorted(trained)}}))


if __name__ == "__main__":
    command, *rest, threads = sys.argv[1:]
    torch.set_num_threads(int(threads))
    {{"forward": forward, "step": step}}[command](*rest)
'''


def prepare(checkout: Path, dest: Path, vit: Path) -> None:
    """A fresh copy of the checkout with every change and our driver."""
    prepare_copy(checkout, dest, changes(), ADDED_MODULE, added_module(vit))


# --- the shared state: drawn weights in the official names -------------------------------
FORWARD_SEED, FORWARD_IMAGES = 11, 4
FORWARD_HISTORY = ((), (9, 11), (11,))  # expansions per task: 2, 1, 3 adapters at 9, 10, 11
STEP_SEED, STEP_IMAGES = 12, 8
STEP_HISTORY, STEP_BLOCK = ((), (9,), (10,)), 10  # task 2's expansion at 10, still training

# an adapter's and a descriptor's tensors in clbench (Adapter, Descriptor) and SEMA-CL
ADAPTER = {f"{ours}.{p}": f"functional.{theirs}.{p}" for ours, theirs
           in (("down", "down_proj"), ("up", "up_proj")) for p in ("weight", "bias")}  # fmt: skip
DESCRIPTOR = {"encode.weight": "rd.encoder.weight", "encode.bias": "rd.encoder.bias",
              "decode.weight": "rd.decoder.weight", "decode.bias": "rd.decoder.bias"}  # fmt: skip


def _counts(history) -> dict[int, int]:
    return {block: 1 + sum(block in task for task in history[1:]) for block in EXPANDABLE}


def _open_blocks(given: dict) -> set[int]:
    """Blocks whose last adapter is still training (official: a new_router beside router)."""
    return set(given["history"][-1]) if given["open"] else set()


def draw_inputs(seed: int, images: int, history, open_: bool, path: Path) -> Path:
    """Images, every adapter, router, descriptor and head tensor, and the descriptors'
    loss buffers, all drawn from ``seed``; weights in the official names."""
    from clbench_sema.strategy import SemaConfig

    config = SemaConfig()
    bottleneck, hidden = config.bottleneck, config.rd_hidden
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape, scale=0.1):
        return torch.randn(shape, generator=generator) * scale

    uint8 = torch.randint(0, 256, (images, 3, 224, 224), generator=generator, dtype=torch.uint8)
    counts, last = _counts(history), set(history[-1]) if open_ else set()
    weights, records = {}, {}
    for block in range(VIT_DEPTH):
        prefix = f"backbone.blocks.{block}.adapter_module."
        for k in range(counts.get(block, 1)):
            at = f"{prefix}adapters.{k}."
            weights.update({at + "functional.down_proj.weight": draw(bottleneck, VIT_WIDTH),
                            at + "functional.down_proj.bias": draw(bottleneck),
                            at + "functional.up_proj.weight": draw(VIT_WIDTH, bottleneck),
                            at + "functional.up_proj.bias": draw(VIT_WIDTH)})  # fmt: skip
            if block in EXPANDABLE:
                weights.update({at + "rd.encoder.weight": draw(hidden, VIT_WIDTH, scale=0.05),
                                at + "rd.encoder.bias": draw(hidden, scale=0.05),
                                at + "rd.decoder.weight": draw(VIT_WIDTH, hidden, scale=0.05),
                                at + "rd.decoder.bias": draw(VIT_WIDTH, scale=0.05)})  # fmt: skip
                records[f"{block}.{k}"] = RECORD_SCALE * (1 + 0.25 * draw(RECORDED, scale=1)).abs()
        if block in EXPANDABLE:
            fused = counts[block] - (block in last)
            weights.update({prefix + "router.weight": draw(fused, VIT_WIDTH),
                            prefix + "router.bias": draw(fused)})  # fmt: skip
            if block in last:
                weights.update({prefix + "new_router.weight": draw(1, VIT_WIDTH),
                                prefix + "new_router.bias": draw(1)})  # fmt: skip
    weights.update({"fc.weight": draw(CLASSES, VIT_WIDTH), "fc.bias": draw(CLASSES)})
    labels = KNOWN + torch.arange(images) % (CLASSES - KNOWN)  # the current task's classes
    torch.save({"images": uint8, "labels": labels, "weights": weights, "records": records,
                "history": [list(t) for t in history], "open": open_, "classes": CLASSES,
                "known": KNOWN}, path)  # fmt: skip
    return path


def with_pixels(vit: Path, path: Path) -> None:
    """Add the normalised tensor clbench's backbone feeds its patch embedding: both sides'
    network input (the official pipeline's [0, 1] pixels are a declared departure)."""
    given = torch.load(path)
    given["pixels"] = vit_backend(vit).backbone.preprocess(given["images"]).cpu()
    torch.save(given, path)


def inputs_sha256(vit: Path, path: Path) -> str:
    """The seeded inputs (ViT, images, weights, buffers), tensor by tensor."""
    given = torch.load(path)
    drawn = {key: given[key] for key in ("images", "labels", "order") if key in given}
    return tensors_sha256(torch.load(vit), drawn, given["weights"], given["records"])


# --- clbench's side ---------------------------------------------------------------------
def clbench_sema(vit: Path, given: dict):
    """clbench's Sema strategy in the given state: grown by its own ``SemaLayer.expand``,
    the drawn weights and buffers loaded, the first task's prefix frozen as after task 0.
    Descriptors keep centre 0 and spread 1 (the standardisation off)."""
    from clbench_sema.strategy import Sema, SemaConfig

    from cl_bench.data.experience import StreamInfo
    from cl_bench.training.strategy import Runtime

    backend = vit_backend(vit)
    info = StreamInfo("parity", tuple(f"class {i}" for i in range(CLASSES)),
                      (tuple(range(KNOWN)), tuple(range(KNOWN, CLASSES))), 224)  # fmt: skip
    config = SemaConfig(func_epochs=1, rd_epochs=1, batch_size=len(given["images"]))
    sema = Sema(backbone=backend, stream=info, config=config,
                runtime=Runtime(torch.device("cpu"), RUN_SEED))  # fmt: skip
    assert tuple(layer.block for layer in sema._layers()) == EXPANDABLE
    for task, blocks in enumerate(given["history"]):
        for layer in sema._layers():
            if task == 0 or layer.block in blocks:
                layer.expand(task)
    with torch.no_grad():
        for name, params in _tensors(sema, _open_blocks(given)).items():
            value = given["weights"][name]
            for param, part in zip(params, value.split([len(p) for p in params]), strict=True):
                param.copy_(part)
    for layer in sema._layers():
        for k, descriptor in enumerate(layer.descriptors):
            descriptor.losses.extend(given["records"][f"{layer.block}.{k}"].tolist())
    sema.seen_ = CLASSES
    sema._tail_inputs = backend.fixed(sema._prefix_output)  # as _first_experience leaves it
    return sema


def _tensors(sema, open_blocks: set[int]) -> dict[str, list[torch.nn.Parameter]]:
    """Official name -> the clbench parameters that, stacked, are that tensor (a router's
    rows are clbench's router columns; a training layer's last column is new_router)."""
    tensors = {}
    for block in range(len(sema.backbone.view)):
        module, prefix = sema.adapters_.at(block), f"backbone.blocks.{block}.adapter_module."
        adapters = module.adapters if block in EXPANDABLE else [module]
        for k, adapter in enumerate(adapters):
            params = dict(adapter.named_parameters())
            tensors.update({f"{prefix}adapters.{k}.{theirs}": [params[ours]]
                            for ours, theirs in ADAPTER.items()})  # fmt: skip
        if block not in EXPANDABLE:
            continue
        for k, descriptor in enumerate(module.descriptors):
            params = dict(descriptor.named_parameters())
            tensors.update({f"{prefix}adapters.{k}.{theirs}": [params[ours]]
                            for ours, theirs in DESCRIPTOR.items()})  # fmt: skip
        columns = list(module.router.columns)
        fused = columns[:-1] if block in open_blocks else columns
        tensors[prefix + "router.weight"] = [c.weight for c in fused]
        tensors[prefix + "router.bias"] = [c.bias for c in fused]
        if block in open_blocks:
            tensors[prefix + "new_router.weight"] = [columns[-1].weight]
            tensors[prefix + "new_router.bias"] = [columns[-1].bias]
    tensors["fc.weight"], tensors["fc.bias"] = [sema.head_.weight], [sema.head_.bias]
    return tensors


def official_state(sema, given: dict) -> dict[str, torch.Tensor]:
    """clbench's model state under the official names."""
    return {name: torch.cat([p.detach() for p in params]).clone()
            for name, params in _tensors(sema, _open_blocks(given)).items()}  # fmt: skip


@torch.no_grad()
def clbench_forward(vit: Path, inputs: Path) -> dict:
    """clbench on the given images: features and logits by the strategy's evaluation path
    (``embed``, ``head_``), the routing weights as each SemaLayer computes them on the
    input its forward receives (caught by a hook: the adapters' input), and its
    descriptors' losses and z-scores on what the strategy feeds them
    (``Sema._summaries``)."""
    given = torch.load(inputs)
    sema = clbench_sema(vit, given)
    images = given["images"]
    caught: dict[int, torch.Tensor] = {}
    hooks = [layer.register_forward_hook(
                 lambda module, args, output, b=layer.block: caught.__setitem__(b, args[0]))
             for layer in sema._layers()]  # fmt: skip
    features = sema.embed(images)
    for hook in hooks:
        hook.remove()
    outputs = {"features": features, "logits": sema.head_(features)}
    tail = sema._tail_input(images)
    for layer in sema._layers():
        b = layer.block
        assert all(d.center.eq(0).all() and d.spread.eq(1).all() for d in layer.descriptors)
        outputs[f"routing.{b}"] = layer.weights(caught[b])
        fed = sema._summaries(tail, b)
        for k, descriptor in enumerate(layer.descriptors):
            outputs[f"loss.{b}.{k}"] = descriptor.errors(fed)
            outputs[f"z.{b}.{k}"] = descriptor.z_scores(fed)
    return outputs


def clbench_frozen_gap(vit: Path, inputs: Path, features: torch.Tensor) -> float:
    """How far the frozen network alone is from the official features (relative)."""
    frozen = vit_backend(vit).features(torch.load(inputs)["images"])
    return relative_difference(frozen, features)[1]


GROUPS = {"features": "features", "logits": "logits", "routing": "routing weights (softmax)",
          "loss": "descriptor reconstruction losses", "z": "descriptor z-scores"}  # fmt: skip


def _grouped(ours: dict, theirs: dict, keys, suffix: str = "") -> dict[str, dict]:
    """Per group of keys: the worst absolute and relative difference of its tensors."""
    compared: dict[str, dict] = {}
    for key in keys:
        name = GROUPS[key.split(".")[0]] + suffix
        absolute, relative = relative_difference(ours[key], theirs[key])
        entry = compared.setdefault(
            name, {"max_abs_difference": 0.0, "max_relative_difference": 0.0, "tensors": 0}
        )
        entry["max_abs_difference"] = max(entry["max_abs_difference"], absolute)
        entry["max_relative_difference"] = max(entry["max_relative_difference"], relative)
        entry["tensors"] += 1
    return compared


def forward_inputs(vit: Path, work: Path) -> Path:
    path = draw_inputs(FORWARD_SEED, FORWARD_IMAGES, FORWARD_HISTORY, False,
                       work / "sema_forward_inputs.pt")  # fmt: skip
    with_pixels(vit, path)
    return path


def forward_check(copy: Path, python: str, vit: Path, work: Path, threads: int) -> dict:
    inputs = forward_inputs(vit, work)
    out = work / "sema_forward_official.pt"
    run_official(python, copy, ADDED_MODULE, ["forward", str(inputs), str(out)], threads,
                 work / "sema-forward-official.log")  # fmt: skip
    theirs = torch.load(out)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    torch.save({"official": theirs, "inputs_sha256": inputs_sha256(vit, inputs),
                "source": SOURCE}, FIXTURES / "sema_forward.pt")  # fmt: skip
    ours = clbench_forward(vit, inputs)
    assert sorted(ours) == sorted(theirs), (sorted(ours), sorted(theirs))
    compared = _grouped(ours, theirs, sorted(theirs))
    worst = max(compared.values(), key=lambda e: e["max_relative_difference"])
    agrees = worst["max_relative_difference"] <= FORWARD_TOLERANCE
    return {
        "kind": "forward equivalence (features, logits, routing weights, descriptor losses "
        "and z-scores)",
        "official": SOURCE,
        "setting": f"ViT-Tiny (random, seed {VIT_SEED}), one adapter at blocks 0-8 and "
        f"{list(_counts(FORWARD_HISTORY).values())} adapters "
        f"with descriptors and routers at blocks {list(EXPANDABLE)}, every tensor drawn, "
        f"{FORWARD_IMAGES} images of 224 px (the same normalised tensor on both sides), "
        f"{RECORDED} losses in each descriptor's buffer, float32, CPU",
        "max_abs_difference": worst["max_abs_difference"],
        "max_relative_difference": worst["max_relative_difference"],
        "tolerance": FORWARD_TOLERANCE,
        "verdict": "agrees" if agrees else "differs",
        "explanation": "",
        "adapters_move_features_by": clbench_frozen_gap(vit, inputs, theirs["features"]),
        "compared": compared,
    }


# --- step equivalence: one step of the expansion's training ------------------------------
def step_inputs(vit: Path, work: Path) -> Path:
    """The drawn state and batch, and the order in which clbench's loop takes the batch's
    images (its run generator's first draw), handed to the official loader so that both
    sides sum the batch in the same order."""
    from cl_bench.training.strategy import Runtime

    path = draw_inputs(STEP_SEED, STEP_IMAGES, STEP_HISTORY, True, work / "sema_step_inputs.pt")
    with_pixels(vit, path)
    given = torch.load(path)
    given["order"] = torch.randperm(STEP_IMAGES, generator=Runtime(torch.device("cpu"),
                                                                   RUN_SEED).generator)  # fmt: skip
    torch.save(given, path)
    return path


def clbench_step(vit: Path, inputs: Path, phase: str,
                 standardise: bool = False) -> tuple[dict, dict]:  # fmt: skip
    """One step of clbench's own training from the given state: ``func``, the expansion's
    classification training (``Sema._classify`` on the new adapter, its router column and
    the head, one epoch of one batch), or ``rd``, its descriptor's (``Sema._describe``).
    For ``rd``, ``standardise`` keeps the declared standardisation (off: ``fit_scale``
    leaves centre 0 and spread 1). Returns (start, after) in the official names."""
    from cl_bench.data.experience import Experience

    given = torch.load(inputs)
    sema = clbench_sema(vit, given)
    start = official_state(sema, given)
    layer = sema.adapters_.at(STEP_BLOCK)
    experience = Experience(len(given["history"]) - 1, tuple(range(KNOWN, CLASSES)),
                            given["images"], given["labels"])  # fmt: skip
    if phase == "func":
        sema._classify(experience, [layer.adapters[-1], layer.router.columns[-1], sema.head_],
                       KNOWN, "parity step", first_trained=STEP_BLOCK)  # fmt: skip
    else:
        descriptor = layer.descriptors[-1]
        if not standardise:
            descriptor.fit_scale = lambda summaries: None
        sema._describe(layer, descriptor, given["images"])
    return start, official_state(sema, given)


def spacing(values: torch.Tensor) -> torch.Tensor:
    """float32 spacing at each value: the size of one rounding of the step's last addition."""
    return (torch.nextafter(values, torch.full_like(values, float("inf"))) - values).abs()


def ulps_at_worst(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """The largest difference in units of float32 spacing at the official value there."""
    worst = (ours - theirs).abs().flatten().argmax()
    return ((ours - theirs).flatten()[worst].abs() / spacing(theirs.flatten()[worst])).item()


ROUNDING = (
    "every element the descriptor step moves beyond 1e-5 of the largest update is within "
    "one float32 rounding of its value: that step's largest change is small against the "
    "weights it changes, so one rounding of the largest weight is already more than 1e-5 "
    "of it (float32_floor), and only bit-identical arithmetic could meet the target"
)


def step_check(copy: Path, python: str, vit: Path, work: Path, threads: int) -> dict:
    inputs = step_inputs(vit, work)
    fixture: dict = {"inputs_sha256": inputs_sha256(vit, inputs), "source": SOURCE}
    compared: dict[str, dict] = {}
    largest: dict[str, float] = {}
    floor: dict[str, float] = {}
    variants = {"rd, standardisation off": False, "rd as clbench runs it (standardised)": True}
    for phase in ("func", "rd"):
        out = work / f"sema_step_{phase}_official.pt"
        run_official(python, copy, ADDED_MODULE, ["step", str(inputs), str(out), phase],
                     threads, work / f"sema-step-{phase}-official.log")  # fmt: skip
        theirs = torch.load(out)
        runs = {"func": False} if phase == "func" else variants
        for label, standardise in runs.items():
            start, ours = clbench_step(vit, inputs, phase, standardise)
            moved = sorted(k for k in start if not torch.equal(start[k], ours[k]))
            assert moved == sorted(theirs), f"clbench trained {moved}, SEMA-CL {sorted(theirs)}"
            largest[phase] = max((theirs[k] - start[k]).abs().max().item() for k in theirs)
            # the smallest relative difference one rounding of the largest weight shows
            weight = max(spacing(theirs[k].abs().max()).item() for k in theirs)
            floor[phase] = weight / largest[phase]
            for key in sorted(theirs):
                difference = (ours[key] - theirs[key]).abs().max().item()
                name = key.removeprefix(f"backbone.blocks.{STEP_BLOCK}.adapter_module.")
                allowed = torch.maximum(
                    spacing(theirs[key]), torch.tensor(FORWARD_TOLERANCE * largest[phase])
                )
                compared[f"{label}: {name}"] = {
                    "max_abs_difference": difference,
                    "max_relative_difference": difference / largest[phase],
                    "ulps_at_worst": ulps_at_worst(ours[key], theirs[key]),
                    "elements_beyond_tolerance_and_rounding":
                        int(((ours[key] - theirs[key]).abs() > allowed).sum())}  # fmt: skip
        fixture[f"official_{phase}_after"] = theirs
    torch.save(fixture, FIXTURES / "sema_step.pt")
    judged = {k: v for k, v in compared.items() if "as clbench runs it" not in k}
    worst = max(judged.values(), key=lambda e: e["max_relative_difference"])
    agrees = worst["max_relative_difference"] <= FORWARD_TOLERANCE
    rounding = not any(e["elements_beyond_tolerance_and_rounding"] for e in judged.values())
    verdict = "agrees" if agrees else "agrees to float32 rounding" if rounding else "differs"
    return {
        "kind": "step equivalence (one SGD step of the expansion's training: new adapter, "
        "new router column and head; and of its descriptor's)",
        "official": SOURCE,
        "setting": f"ViT-Tiny (random, seed {VIT_SEED}), the state after an expansion at "
        f"block {STEP_BLOCK} (adapters {list(_counts(STEP_HISTORY).values())} at blocks "
        f"{list(EXPANDABLE)}, the new one training), every tensor drawn, "
        f"{STEP_IMAGES} images of 224 px of {CLASSES - KNOWN} current classes ({KNOWN} old "
        "classes masked), one batch, each side's own loss, SGD and learning rates, float32, CPU",
        "max_abs_difference": worst["max_abs_difference"],
        "max_relative_difference": worst["max_relative_difference"],
        "relative_to": "the largest change the official step makes to any tensor it trains "
        "(per phase)",
        "largest_official_update": largest,
        "float32_floor": floor,
        "tensors": sum(1 for k in judged),
        "tolerance": FORWARD_TOLERANCE,
        "verdict": verdict,
        "explanation": "" if agrees else ROUNDING if rounding else "",
        "compared": compared,
    }
