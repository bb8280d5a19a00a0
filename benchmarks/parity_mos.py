"""MOS beside its official code (issue 31, items 1, 2 and 5): the forward pass and the
self-refined adapter retrieval after three tasks, and one optimiser step of the adapter
training, on one ViT-Tiny file and the same seeded inputs.

    .venv/bin/python benchmarks/parity_vs_official.py --mos AAAI25-MOS \\
        --official-python OFFICIAL-VENV/bin/python --methods mos mos-step

AAAI25-MOS is a local checkout at 8d5e07c; the check runs a temporary copy of it with the
changes of ``changes()`` (ViT-B/16 -> ViT-Tiny, its weights from the benchmark's file) and
our driver ``ADDED_MODULE``, in a Python with what the code imports: easydict, and a timm
that still has ``timm.models.layers`` (the official venv's timm 0.6.13).

The driver builds the official ``Learner`` (models/mos.py), gives its ViT the drawn
adapter sets through the code's own ``adapter_update`` (which stores a set and its
prefix sums), and runs the code's own ``_eval_cnn`` and ``_init_train``; hooks only
watch what they compute. clbench's side is its ``Mos`` strategy holding the same
numbers. Two departures that ``Mos``'s Origin declares touch what is compared, and each
is switched off on the official side (``departure_off``) and also shown as the code
runs it (``as_code``), so that the gap they leave is seen to be all of the difference:

- the code re-weights a stored set toward the mean of the earlier ones inside every
  forward pass (once per block: ``reweight_adapter`` in ``forward_features``), also while
  evaluating, which modifies the stored sets; clbench never modifies a stored set and
  merges the training set once after each optimiser step, as the code also does
  (``adapter_merge``). ``departure_off`` makes ``reweight_adapter`` the identity inside
  ``forward_features`` only, so that ``adapter_merge`` after the step stays the code's;
- the code feeds [0, 1] pixels, clbench normalises with the backbone's statistics: the
  official side gets the images normalised as clbench normalises them.

Dropout in the adapters (0.1 in the code) is off on both sides for the step (each side
draws its own masks); at evaluation both have it off anyway.
"""

from __future__ import annotations

import dataclasses
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

SOURCE = "https://github.com/sun-hailong/AAAI25-MOS at 8d5e07c"
ADDED_MODULE = "utils/clbench_parity_mos.py"
TASKS, PER_TASK = 3, 2  # 6 classes: the code's evaluation takes a top-5, so at least 5
CLASSES = TASKS * PER_TASK
FORWARD_SEED, FORWARD_IMAGES = 2, 8  # the first seed of 1..12 whose images take every path
STEP_SEED, STEP_IMAGES = 4, 8
# the current set's size (down and up drawn alike, |theta| < 0.25: a float32 ulp of it is
# 1.5e-8, well below 1e-5 of the step), and the stored sets' distance from it
STEP_SCALE, STEP_SPREAD = 0.05, 0.01
# an adapter's tensors in clbench (Adapter) and in the code (vit_mos.Adapter)
OFFICIAL_NAMES = {"down.weight": "down_proj.weight", "down.bias": "down_proj.bias",
                  "up.weight": "up_proj.weight", "up.bias": "up_proj.bias"}  # fmt: skip
MODES = ("departure_off", "as_code")


def changes() -> tuple[Substitution, ...]:
    """What the copy of AAAI25-MOS needs to build its ViT as ViT-Tiny from our file."""
    return (
        Substitution(
            "backbone/vit_mos.py",
            'timm.create_model("vit_base_patch16_224", pretrained=True, '
            "num_classes=kwargs['num_classes'])",
            "vit_tiny(num_classes=kwargs['num_classes'])",
            1,
            "MOS's ViT copies its weights from the benchmark's ViT-Tiny file (vit_tiny in the "
            f"added {ADDED_MODULE}), not from ViT-B/16 on the hub",
        ),
        Substitution(
            "backbone/vit_mos.py",
            "import timm\n",
            "import timm\nfrom utils.clbench_parity_mos import vit_tiny\n",
            1,
            "imports that loader",
        ),
        _width("backbone/vit_mos.py", 19, "the ViT builders, the checkpoint's q/k/v split"),
        _heads("backbone/vit_mos.py", 3),
        _width("utils/inc_net.py", 2, "the adapters' d_model, out_dim"),
    )


def added_module(vit: Path) -> str:
    """Our driver in the copy: the ViT-Tiny loader, and the forward and step drivers that
    run the code's Learner and print a ``CLBENCH-PARITY`` line."""
    return f'''"""Added by clbench's benchmarks/parity_mos.py; not the official code."""

import inspect
import json
import sys

import timm
import torch

VIT_WEIGHTS = {str(vit)!r}


def vit_tiny(num_classes):
    """timm's ViT-Tiny holding VIT_WEIGHTS (its head, if any, stays as initialised)."""
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes)
    missing, unexpected = model.load_state_dict(torch.load(VIT_WEIGHTS, map_location="cpu"),
                                                strict=False)
    if unexpected or set(missing) - {{"head.weight", "head.bias"}}:
        raise RuntimeError(f"{{VIT_WEIGHTS}} does not fit ViT-Tiny: {{missing}} {{unexpected}}")
    return model


def part(tensors, prefix):
    return {{k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}}


def install(modules, state):
    """The given tensors as the modules' parameters: new storage, as the code's own
    reweight_adapter assigns it, so that no stored prefix sum shares it."""
    for name, parameter in modules.named_parameters():
        parameter.data = state[name].clone()


def learner_holding(given):
    """The code's Learner after the stored tasks: each stored set goes through the ViT's
    current set and its adapter_update (the code's copy + prefix sums), then the current
    set and the linear head get the given tensors."""
    from models.mos import Learner

    s, t = given["settings"], given["tensors"]
    args = {{"model_name": "mos", "backbone_type": "vit_base_patch16_224_mos",
            "ffn_num": s["bottleneck"], "nb_classes": s["classes"],
            "device": [torch.device("cpu")], "adapter_momentum": s["merge_momentum"],
            "memory_size": 0, "batch_size": s["batch_size"], "init_lr": s["lr"],
            "ca_lr": 0.005, "crct_epochs": 1, "weight_decay": s["weight_decay"],
            "min_lr": 0, "ensemble": True, "reg": s["orthogonality_weight"],
            "optimizer": "sgd", "scheduler": "cosine", "tuned_epoch": 1,
            "ca_storage_efficient_method": "covariance"}}
    learner = Learner(args)
    vit = learner._network.backbone
    for task in range(s["stored"]):
        install(vit.cur_adapter, part(t, f"stored.{{task}}."))
        vit.adapter_update()
    if any(k.startswith("current.") for k in t):
        install(vit.cur_adapter, part(t, "current."))
    vit.head.weight.data = t["head.weight"].clone()
    vit.head.bias.data = t["head.bias"].clone()
    learner.cls2task = {{c: c // s["per_task"] for c in range(s["classes"])}}
    return learner, vit


def switch_off_merging_in_forward(vit):
    """The departure off: reweight_adapter is the identity inside forward_features (the
    code's adapter_merge after a step still re-weights)."""
    real = vit.forward_features

    def forward_features(x, adapter_id, train):
        vit.reweight_adapter = lambda adapter, idx: adapter
        try:
            return real(x, adapter_id, train)
        finally:
            del vit.reweight_adapter

    vit.forward_features = forward_features


def images(given):
    s = given["settings"]
    mean = torch.tensor(s["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(s["std"]).view(1, 3, 1, 1)
    return (given["tensors"]["images"].float() / 255 - mean) / std


def forward(inputs, out):
    """The code's _eval_cnn on the images after the stored tasks, watched: the features
    of every stored set, the prototype (cosine fc) logits, each head evaluation of the
    self-refined retrieval (whose input tells which image and set it is), the scores."""
    given = torch.load(inputs)
    s = given["settings"]
    x = images(given)
    results = {{}}
    for mode in {MODES!r}:
        learner, vit = learner_holding(given)
        if mode == "departure_off":
            switch_off_merging_in_forward(vit)
        learner._cur_task = s["stored"] - 1
        learner._known_classes = learner._total_classes = s["classes"]
        learner._network.update_fc(s["classes"])
        learner._network.fc.weight.data = given["tensors"]["prototypes"].clone()
        signature = inspect.signature(vit.forward)
        calls, prototype_logits, scores = [], [], []

        def watch(module, args, kwargs, output):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            calls.append((dict(bound.arguments), {{k: v.detach().clone()
                                                   for k, v in output.items()}}))

        vit.register_forward_hook(watch, with_kwargs=True)
        learner._network.fc.register_forward_hook(
            lambda m, a, o: prototype_logits.append(o["logits"].detach().clone()))
        real_topk = torch.topk

        def topk(input, *args, **kwargs):
            scores.append(input.detach().clone())
            return real_topk(input, *args, **kwargs)

        torch.topk = topk
        try:
            learner._eval_cnn([(None, x, torch.zeros(len(x), dtype=torch.int64))])
        finally:
            torch.topk = real_topk
        features = {{}}
        for arguments, output in calls:
            if not arguments["fc_only"] and arguments["adapter_id"] >= 0:
                features.setdefault(arguments["adapter_id"], []).append(output["features"])
        orig = features[0][0]  # forward_orig's pass; the loop's is the last
        per_set = torch.stack([features[0][-1]] + [features[k][0] for k in range(1, s["stored"])])
        route = [[] for _ in range(len(x))]
        final = torch.empty(len(x), s["classes"])
        for arguments, output in calls:
            if not arguments["fc_only"]:
                continue
            row = arguments["x"][0]
            [(image, task)] = [(i, k) for k in range(s["stored"]) for i in range(len(x))
                               if torch.equal(per_set[k, i], row)]
            route[image].append(task)
            final[image] = output["logits"][0, :s["classes"]]
        [score] = scores
        results[mode] = {{
            "features": per_set, "orig_features": orig,
            "prototype_logits": prototype_logits[0][:, :s["classes"]],
            "final_logits": final, "scores": score,
            "task": torch.tensor([r[-1] for r in route]),
            "rounds": torch.tensor([len(r) for r in route]),
        }}
    torch.save(results, out)
    print("CLBENCH-PARITY " + json.dumps({{m: r["task"].tolist() for m, r in results.items()}}))


def step(inputs, out):
    """One step of the code's _init_train (one epoch of one batch) at the given task:
    its loss (masked cross-entropy + orth_loss against the stored class means), its
    optimiser (get_optimizer: SGD, adapters at lr, head at lr x 0.1), its adapter_merge.
    Adapter dropout off. Saves the current set and the head after the step."""
    given = torch.load(inputs)
    s, t = given["settings"], given["tensors"]
    x = images(given)
    results = {{}}
    for mode in {MODES!r}:
        learner, vit = learner_holding(given)
        if mode == "departure_off":
            switch_off_merging_in_forward(vit)
        learner._cur_task = s["stored"]
        learner._known_classes = s["stored"] * s["per_task"]
        learner._total_classes = learner._known_classes + s["per_task"]
        learner.cls_mean = {{c: m.clone() for c, m in enumerate(t["class_means"])}}
        for adapter in vit.cur_adapter:
            adapter.dropout = 0.0
        optimizer = learner.get_optimizer(vit)
        scheduler = learner.get_scheduler(optimizer)
        losses, real_backward = [], torch.Tensor.backward

        def backward(tensor, *args, **kwargs):
            losses.append(tensor.item())
            return real_backward(tensor, *args, **kwargs)

        torch.Tensor.backward = backward
        try:
            learner._init_train([(None, x, t["labels"])], None, optimizer, scheduler)
        finally:
            torch.Tensor.backward = real_backward
        after = {{f"current.{{k}}": v.detach().clone()
                 for k, v in vit.cur_adapter.named_parameters()}}
        after["head.weight"] = vit.head.weight.detach().clone()
        after["head.bias"] = vit.head.bias.detach().clone()
        [loss] = losses
        results[mode] = {{"after": after, "loss": loss}}
    torch.save(results, out)
    print("CLBENCH-PARITY " + json.dumps({{m: r["loss"] for m, r in results.items()}}))


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[-1]))
    {{"forward": forward, "step": step}}[sys.argv[1]](sys.argv[2], sys.argv[3])
'''


def prepare(checkout: Path, dest: Path, vit: Path) -> None:
    """A fresh copy of the checkout with every change and our driver."""
    prepare_copy(checkout, dest, changes(), ADDED_MODULE, added_module(vit))


# --- inputs, and clbench's MOS holding them -----------------------------------------------
_BACKENDS: dict[Path, object] = {}


def vit_backend_cached(vit: Path):
    """One clbench backend per ViT file, for every check and test that uses it."""
    if vit not in _BACKENDS:
        _BACKENDS[vit] = vit_backend(vit)
    return _BACKENDS[vit]


def _settings(config) -> dict:
    return {"bottleneck": config.bottleneck, "classes": CLASSES, "per_task": PER_TASK,
            "merge_momentum": config.merge_momentum, "lr": config.lr,
            "weight_decay": config.weight_decay, "batch_size": config.batch_size,
            "orthogonality_weight": config.orthogonality_weight}  # fmt: skip


def _drawn_set(generator: torch.Generator, prefix: str, scale: float = 0.1) -> dict:
    """One adapter set in the code's names (``{block}.down_proj.weight``, ...), every
    tensor drawn (not a fresh set's zero up-projection, which would hide the adapters)."""
    from clbench_mos.strategy import Mos

    width = Mos.Config().bottleneck  # 16, the code's ffn_num in every config
    shapes = {"down_proj.weight": (width, VIT_WIDTH), "down_proj.bias": (width,),
              "up_proj.weight": (VIT_WIDTH, width), "up_proj.bias": (VIT_WIDTH,)}  # fmt: skip
    return {f"{prefix}{block}.{name}": torch.randn(shape, generator=generator) * scale
            for block in range(VIT_DEPTH) for name, shape in shapes.items()}  # fmt: skip


def _images(generator: torch.Generator, count: int) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 224, 224), generator=generator, dtype=torch.uint8)


def _save_inputs(path: Path, tensors: dict, settings: dict, vit: Path) -> Path:
    """The inputs, and the backbone's normalisation, which the official side applies."""
    backend = vit_backend_cached(vit)
    settings = {**settings, "mean": list(backend.backbone.mean), "std": list(backend.backbone.std)}
    torch.save({"tensors": tensors, "settings": settings}, path)
    return path


def inputs_sha256(vit: Path, inputs: Path) -> str:
    """The checksum of the ViT file and every input tensor."""
    return tensors_sha256(torch.load(vit), torch.load(inputs)["tensors"])


def _load_set(adapters, tensors: dict, prefix: str) -> None:
    """Tensors in the code's names (``prefix{block}.down_proj.weight``) into an AdapterSet."""
    adapters.load_state_dict({f"places.{block}.{ours}": tensors[f"{prefix}{block}.{theirs}"]
                              for block in range(VIT_DEPTH)
                              for ours, theirs in OFFICIAL_NAMES.items()})  # fmt: skip


def _official_names(adapters, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{block}.{OFFICIAL_NAMES[key]}": value.detach().clone()
            for block in adapters.blocks
            for key, value in adapters.at(block).state_dict().items()}  # fmt: skip


def clbench_mos(backend, tensors: dict, stored: int, **config):
    """clbench's Mos after ``stored`` tasks, holding the given stored sets and head, as its
    ``train`` leaves them: each stored set a frozen copy in eval mode with its memoised
    features, the head frozen, classes mapped to tasks in order (prototypes, if given)."""
    from clbench_mos.strategy import Mos

    from cl_bench.data.experience import StreamInfo
    from cl_bench.training.strategy import Runtime

    stream = StreamInfo("parity", tuple(f"class {c}" for c in range(CLASSES)),
                        tuple(tuple(range(t * PER_TASK, (t + 1) * PER_TASK))
                              for t in range(TASKS)), 224)  # fmt: skip
    mos = Mos(backbone=backend, stream=stream, config=Mos.Config(**config),
              runtime=Runtime(torch.device("cpu"), 0))  # fmt: skip
    for task in range(stored):
        snapshot = mos.current_.copy().eval()
        _load_set(snapshot, tensors, f"stored.{task}.")
        mos._freeze(snapshot)
        mos.stored_.append(snapshot)
        mos._stored_features.append(
            backend.fixed(lambda x, snapshot=snapshot: backend.forward(x, snapshot))
        )
    with torch.no_grad():
        mos.head_.weight.copy_(tensors["head.weight"])
        mos.head_.bias.copy_(tensors["head.bias"])
    mos.task_of_class_ = torch.arange(stored * PER_TASK) // PER_TASK
    if "prototypes" in tensors:
        mos.prototypes_ = tensors["prototypes"].clone()
    return mos


# --- forward equivalence: the stored sets' features and the retrieval ------------------------
def forward_inputs(vit: Path, work: Path) -> Path:
    """Images, three drawn adapter sets, a drawn linear head and drawn prototypes (the
    cosine classifier of the first set's features), in the code's names."""
    from clbench_mos.strategy import Mos

    generator = torch.Generator().manual_seed(FORWARD_SEED)
    tensors = {"images": _images(generator, FORWARD_IMAGES)}
    for task in range(TASKS):
        tensors.update(_drawn_set(generator, f"stored.{task}."))
    tensors["head.weight"] = torch.randn(CLASSES, VIT_WIDTH, generator=generator) * 0.1
    tensors["head.bias"] = torch.randn(CLASSES, generator=generator) * 0.1
    tensors["prototypes"] = torch.randn(CLASSES, VIT_WIDTH, generator=generator)
    settings = {**_settings(Mos.Config()), "stored": TASKS}
    return _save_inputs(work / "mos_forward_inputs.pt", tensors, settings, vit)


@torch.no_grad()
def clbench_mos_forward(vit: Path, inputs: Path, batched: bool = False) -> dict:
    """clbench's MOS holding the same numbers, on the same images: each stored set's
    features, and its retrieval (the per-round path a CPU takes, or the batched path of
    other devices), watched at ``refine``: the prototype logits it starts from, the
    final head logits (the head on the features of each image's final set), scores,
    final set and rounds."""
    import clbench_mos.strategy as strategy

    backend = vit_backend_cached(vit)
    tensors = torch.load(inputs)["tensors"]
    mos = clbench_mos(backend, tensors, TASKS)
    images = tensors["images"]
    backend.register(images)  # as an evaluation registers the stream's images
    watched = {}
    real = strategy.refine

    def refine(head, features_for, prototype_logits, task_of_class, num_tasks, max_rounds=4):
        result = real(head, features_for, prototype_logits, task_of_class, num_tasks, max_rounds)
        rows = torch.arange(len(images))
        watched["prototype_logits"] = prototype_logits.clone()
        watched["final_logits"] = head(features_for(result.task, rows))[:, : len(task_of_class)]
        return result

    strategy.refine = refine
    try:
        retrieval, _ = (mos._retrieve_batched if batched else mos._retrieve_per_round)(images)
    finally:
        strategy.refine = real
    return {
        "features": torch.stack([mos._stored_features[t](images) for t in range(TASKS)]),
        **watched,
        "scores": retrieval.scores,
        "task": retrieval.task,
        "rounds": retrieval.rounds,
    }


def compare_forward(ours: dict, theirs: dict) -> dict:
    """Each compared quantity: the largest absolute and relative difference, or for the
    retrieval's discrete choices the agreement."""
    compared = {}
    for key in ("features", "prototype_logits", "final_logits", "scores"):
        difference, relative = relative_difference(ours[key], theirs[key])
        compared[key] = {"max_abs_difference": difference, "max_relative_difference": relative}
    for key in ("task", "rounds"):
        same = int((ours[key] == theirs[key]).sum())
        compared[f"retrieval {key}"] = {"agreement": f"{same}/{len(theirs[key])} images"}
    same = int((ours["scores"].argmax(1) == theirs["scores"].argmax(1)).sum())
    compared["prediction"] = {"agreement": f"{same}/{len(theirs['scores'])} images"}
    return compared


def frozen_gap(vit: Path, inputs: Path, theirs: dict) -> float:
    """How far the frozen network alone is from the official stored sets' features
    (relative): a check that cannot pass without the adapters."""
    frozen = vit_backend_cached(vit).features(torch.load(inputs)["tensors"]["images"])
    return max(relative_difference(frozen, features)[1] for features in theirs["features"])


def _worst(compared: dict) -> tuple[float, float]:
    numeric = [v for v in compared.values() if "max_abs_difference" in v]
    return (max(v["max_abs_difference"] for v in numeric),
            max(v["max_relative_difference"] for v in numeric))  # fmt: skip


def _agrees(compared: dict, relative: float) -> bool:
    discrete = [v["agreement"] for v in compared.values() if "agreement" in v]
    return relative <= FORWARD_TOLERANCE and all(
        a.split("/")[0] == a.split("/")[1].split()[0] for a in discrete
    )


def _retrieval(outputs: dict) -> dict:
    return {"task": outputs["task"].tolist(), "rounds": outputs["rounds"].tolist()}


def forward_check(copy: Path, python: str, vit: Path, work: Path, threads: int) -> dict:
    inputs = forward_inputs(vit, work)
    out = work / "mos_forward_official.pt"
    run_official(python, copy, ADDED_MODULE, ["forward", str(inputs), str(out)], threads,
                 work / "mos-forward-official.log")  # fmt: skip
    official = torch.load(out)
    theirs = official["departure_off"]
    if relative_difference(theirs["orig_features"], theirs["features"][0])[1] > FORWARD_TOLERANCE:
        raise SystemExit("the code's forward_orig and its first set differ: see the driver")
    FIXTURES.mkdir(parents=True, exist_ok=True)
    torch.save({"official": {k: v for k, v in theirs.items() if k != "orig_features"},
                "inputs_sha256": inputs_sha256(vit, inputs), "source": SOURCE},
               FIXTURES / "mos_forward.pt")  # fmt: skip
    ours = clbench_mos_forward(vit, inputs)
    compared = compare_forward(ours, theirs)
    batched = compare_forward(clbench_mos_forward(vit, inputs, batched=True), theirs)
    compared.update({f"{k} (batched retrieval)": v for k, v in batched.items()})
    difference, relative = _worst(compared)
    as_code = compare_forward(ours, official["as_code"])
    return {
        "kind": "forward equivalence (each stored set's features, prototype and head logits, "
        "scores, adapter-retrieval choice and rounds)",
        "official": SOURCE,
        "setting": f"ViT-Tiny (random, seed {VIT_SEED}), MOS after {TASKS} tasks of "
        f"{PER_TASK} classes: {TASKS} drawn adapter sets at all {VIT_DEPTH} blocks, drawn "
        f"linear head and prototypes, {FORWARD_IMAGES} images of 224 px, float32, CPU; the "
        "code's in-forward re-weighting of stored sets switched off (declared departure)",
        "max_abs_difference": difference,
        "max_relative_difference": relative,
        "tolerance": FORWARD_TOLERANCE,
        "verdict": "agrees" if _agrees(compared, relative) else "differs",
        "explanation": "",
        "compared": compared,
        "official_retrieval": _retrieval(theirs),
        "adapters_move_features_by": frozen_gap(vit, inputs, theirs),
        "departure_as_code": {
            "what": "the code as it runs, re-weighting stored sets 1.. toward the mean of "
            "the earlier ones once per block in every forward (modifying them): the whole "
            "difference, as the check with it switched off agrees",
            "compared": as_code,
            "official_retrieval": _retrieval(official["as_code"]),
        },
    }


# --- step equivalence: one step of the adapter training at the third task ---------------------
def step_class_means(vit: Path) -> torch.Tensor:
    """The four earlier classes' stored means: the frozen network's features of two seeded
    images each, as MOS computes them from features. (Drawn vectors lie so far from every
    feature that the orthogonality term would have no gradient at all.) Computed once by
    this script and kept in the fixture, so that the test's inputs never depend on
    clbench's computation."""
    generator = torch.Generator().manual_seed(STEP_SEED + 1)
    features = vit_backend_cached(vit).features(_images(generator, 2 * PER_TASK * (TASKS - 1)))
    return features.view(PER_TASK * (TASKS - 1), 2, -1).mean(1)


def step_inputs(vit: Path, work: Path, class_means: torch.Tensor | None = None) -> Path:
    """Images of the third task's two classes, a drawn current set, two stored sets drawn
    near it (so that the merge moves it about as far as the gradient does), the earlier
    classes' means (``step_class_means`` unless given), a drawn head."""
    from clbench_mos.strategy import Mos

    config = dataclasses.replace(Mos.Config(), batch_size=STEP_IMAGES)
    generator = torch.Generator().manual_seed(STEP_SEED)
    stored = TASKS - 1
    tensors = {"images": _images(generator, STEP_IMAGES),
               "labels": stored * PER_TASK + torch.arange(STEP_IMAGES) % PER_TASK}  # fmt: skip
    current = _drawn_set(generator, "", STEP_SCALE)
    tensors.update({f"current.{k}": v for k, v in current.items()})
    for task in range(stored):
        noise = _drawn_set(generator, "", STEP_SPREAD)
        tensors.update({f"stored.{task}.{k}": v + noise[k] for k, v in current.items()})
    tensors["class_means"] = step_class_means(vit) if class_means is None else class_means
    tensors["head.weight"] = torch.randn(CLASSES, VIT_WIDTH, generator=generator) * 0.1
    tensors["head.bias"] = torch.randn(CLASSES, generator=generator) * 0.1
    settings = {**_settings(config), "stored": stored}
    return _save_inputs(work / "mos_step_inputs.pt", tensors, settings, vit)


def clbench_mos_step(vit: Path, inputs: Path, **overrides) -> dict[str, torch.Tensor]:
    """clbench's own adapter training (Mos._train_adapters) for exactly one step (one
    epoch of one batch) at the third task, dropout off: the current set and the head
    after it, in the code's names."""
    backend = vit_backend_cached(vit)
    given = torch.load(inputs)
    tensors, stored = given["tensors"], given["settings"]["stored"]
    mos = clbench_mos(backend, tensors, stored, epochs=1, batch_size=STEP_IMAGES,
                      adapter_dropout=0.0, **overrides)  # fmt: skip
    _load_set(mos.current_, tensors, "current.")
    mos.gaussians_.means.extend(tensors["class_means"].unbind())
    images = tensors["images"]
    stems = mos.training_inputs(images, lambda x: backend.block_input(x, 0))
    known = stored * PER_TASK
    mos._train_adapters(stems, tensors["labels"], known, known + PER_TASK, stored)
    after = _official_names(mos.current_, "current.")
    after["head.weight"] = mos.head_.weight.detach().clone()
    after["head.bias"] = mos.head_.bias.detach().clone()
    return after


def _start(inputs: Path) -> dict[str, torch.Tensor]:
    tensors = torch.load(inputs)["tensors"]
    return {k: v for k, v in tensors.items() if k.startswith(("current.", "head."))}


def _group(key: str) -> str:
    return key if key.startswith("head.") else "adapters " + key.split(".", 2)[2]


def compare_step(start: dict, ours: dict, theirs: dict) -> tuple[dict, float]:
    """Per tensor group, the largest difference after the step, and relative to the
    official step's largest update to any trained tensor."""
    largest = max((theirs[k] - start[k]).abs().max().item() for k in start)
    compared: dict[str, dict] = {}
    for key in start:
        difference = (ours[key] - theirs[key]).abs().max().item()
        entry = compared.setdefault(_group(key), {"max_abs_difference": 0.0})
        entry["max_abs_difference"] = max(entry["max_abs_difference"], difference)
        entry["max_relative_difference"] = entry["max_abs_difference"] / largest
    return compared, largest


def head_update(start: dict, after: dict) -> torch.Tensor:
    """The head's update (weight and bias, 6 x 193 numbers): kept whole in the fixture."""
    return torch.cat([after["head.weight"] - start["head.weight"],
                      (after["head.bias"] - start["head.bias"])[:, None]], dim=1)  # fmt: skip


def adapter_sketch(start: dict, after: dict) -> torch.Tensor:
    keys = [k for k in start if k.startswith("current.")]
    return update_sketch({k: start[k] for k in keys}, {k: after[k] for k in keys})


def step_check(copy: Path, python: str, vit: Path, work: Path, threads: int) -> dict:
    inputs = step_inputs(vit, work)
    out = work / "mos_step_official.pt"
    run_official(python, copy, ADDED_MODULE, ["step", str(inputs), str(out)], threads,
                 work / "mos-step-official.log")  # fmt: skip
    official = torch.load(out)
    theirs = official["departure_off"]["after"]
    start = _start(inputs)
    ours = clbench_mos_step(vit, inputs)
    compared, largest = compare_step(start, ours, theirs)
    torch.save({"official_adapter_sketch": adapter_sketch(start, theirs),
                "official_head_update": head_update(start, theirs),
                "largest_official_update": largest,
                "class_means": torch.load(inputs)["tensors"]["class_means"],
                "official_loss": official["departure_off"]["loss"],
                "inputs_sha256": inputs_sha256(vit, inputs), "source": SOURCE},
               FIXTURES / "mos_step.pt")  # fmt: skip
    difference, relative = _worst(compared)
    as_code, _ = compare_step(start, ours, official["as_code"]["after"])
    without = {}
    for name, override in (("orthogonality term", {"orthogonality_weight": 0.0}),
                           ("merge", {"merge_momentum": 0.0})):  # fmt: skip
        gaps, _ = compare_step(start, clbench_mos_step(vit, inputs, **override), theirs)
        without[name] = _worst(gaps)[1]
    return {
        "kind": "step equivalence (one SGD step of the adapter training with the "
        "orthogonality term and the adapter merge: the current set's tensors and the head)",
        "official": SOURCE,
        "setting": f"ViT-Tiny (random, seed {VIT_SEED}), MOS at its third task: two drawn "
        f"stored sets, a drawn current set and head, four drawn stored class means, "
        f"{STEP_IMAGES} images of the task's {PER_TASK} classes, one batch, the code's "
        "CIFAR-100 settings, adapter dropout off on both sides, float32, CPU; the code's "
        "in-forward re-weighting switched off (declared departure), its merge after the "
        "step kept",
        "max_abs_difference": difference,
        "max_relative_difference": relative,
        "relative_to": "the largest change the official step makes to any trained tensor",
        "largest_official_update": largest,
        "tensors": len(start),
        "tolerance": FORWARD_TOLERANCE,
        "verdict": "agrees" if relative <= FORWARD_TOLERANCE else "differs",
        "explanation": "",
        "compared": compared,
        "official_loss": official["departure_off"]["loss"],
        "without_in_clbench": {k: {"max_relative_difference": v} for k, v in without.items()},
        "departure_as_code": {
            "what": "the code as it runs, re-weighting the current set toward the stored "
            "sets' mean once per block inside the forward pass (12 times before the "
            "gradient) as well as after the step: the whole difference, as the check with "
            "it switched off agrees",
            "official_loss": official["as_code"]["loss"],
            "max_relative_difference": _worst(as_code)[1],
        },
    }
