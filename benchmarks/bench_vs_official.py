"""clbench against the papers' official code on the same work (issues 19 and 31): wall
time and peak RSS of SEMA, MOS, and LAMDA-PILOT's APER and EASE, each side run alone,
one after another.

    .venv/bin/python benchmarks/bench_vs_official.py --sema SEMA-CL --mos AAAI25-MOS \\
        --pilot LAMDA-PILOT --pilot-python PILOT-VENV/bin/python \\
        [--augment] [--work DIR] [--repeat N] [--official-python PYTHON]
    .venv/bin/python benchmarks/bench_vs_official.py --list-changes

SEMA-CL, AAAI25-MOS and LAMDA-PILOT are local checkouts of the official code (SEMA-CL at
5a45512, the CVPR 2025 code; PILOT at 2647455, run with timm 0.6.13 as its README pins
0.6.12, which does not import on Python 3.11; none is a dependency of clbench). The
work: a 20-class image folder of Open Clip Art (30 training and 10 test images a class,
224 px), 5 classes then 5 per task, one randomly initialised ViT-Tiny weights file
loaded by both sides, the official CIFAR-100 configs with the schedules cut (SEMA: 1
functional and 1 descriptor epoch; MOS: 1 epoch and 5 alignment epochs; APER and EASE: 1
epoch a session), seed 1993, one recipe on both sides: without augmentation by default
(the official training transform replaced by the official evaluation transform), or with
``--augment`` the official RandomResizedCrop + flip on both (clbench ``augment=true``).
Each side is a child process with 2 threads, no GPU and no worker processes, and starts
cold (the official code has no cache; clbench gets an empty cache folder); its wall time
is measured from launch to exit and its peak RSS is the child's own (``os.wait4``). The
official code runs on a temporary copy with the changes in official_runtime.py
(``--list-changes``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from official_runtime import OFFICIALS, ChangeDoesNotApply, Official, describe, prepare
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CLIPART = Path("/usr/share/openclipart/png")
CLASSES = 20
TRAIN, TEST = 30, 10  # images per class
SIZE = 224
SEED = 1993
BLANK_STD = 3.0  # as clbench's streams: clip art that renders as a plain colour is skipped
MAX_PIXELS = 40_000_000  # a few openclipart PNGs are huge (one is 623 MP)


# --- the shared work --------------------------------------------------------------------
def build_image_folder(root: Path) -> Path:
    """``root/train/<class>/*.png`` and ``root/test/<class>/*.png``: 20 openclipart
    folders of the offline default, images in a fixed shuffled order, blank and duplicate
    renderings skipped, flattened on white, padded square, 224 px RGB.

    Written as plain RGB PNGs so that both sides decode the same pixels (the official
    loader drops transparency without flattening it)."""
    from cl_bench.data.sources.base import to_rgb_square

    manifest = root / "manifest.json"
    classes = _clipart_classes()
    if manifest.is_file() and json.loads(manifest.read_text()).get("classes") == classes:
        return root
    partial = root.with_name(root.name + ".partial")  # renamed into place when complete
    chosen: dict[str, list[str]] = {}
    for name in classes:
        images = _usable_images(CLIPART / name, TRAIN + TEST, to_rgb_square)
        chosen[name] = [source.name for source, _ in images]
        for split, part in (("train", images[:TRAIN]), ("test", images[TRAIN:])):
            folder = partial / split / name.replace("/", "_")
            folder.mkdir(parents=True, exist_ok=True)
            for i, (_, pixels) in enumerate(part):
                Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    (partial / "manifest.json").write_text(json.dumps({"classes": classes, "files": chosen}))
    if root.exists():
        shutil.rmtree(root)
    partial.rename(root)
    return root


def _clipart_classes() -> list[str]:
    """The first 20 of the offline default's 30 clip-art classes (the largest folders)."""
    from cl_bench.training.registry import Registry

    spec = Registry.discover().stream("offline-mix")
    [source] = [s for s in spec.sources if s.kind == "openclipart"]
    return list(source.classes or [])[:CLASSES]


def _usable_images(
    folder: Path, count: int, render: Callable[[Image.Image, int], np.ndarray]
) -> list[tuple[Path, np.ndarray]]:
    """The first ``count`` usable images of ``folder`` in a seeded order (seed 0, as the
    offline default's split), with the files they came from."""
    files = sorted(folder.glob("*.png"))
    order = np.random.RandomState(0).permutation(len(files))
    chosen, seen = [], set()
    for index in order:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(files[index])
        except Image.DecompressionBombError:
            continue
        with image:
            if image.width * image.height > MAX_PIXELS:
                continue
            pixels = render(image, SIZE)
        digest = hashlib.sha1(pixels.tobytes()).digest()
        if pixels.std() < BLANK_STD or digest in seen:
            continue
        seen.add(digest)
        chosen.append((files[index], pixels))
        if len(chosen) == count:
            return chosen
    raise SystemExit(f"{folder}: only {len(chosen)} usable images, {count} needed")


def build_weights(path: Path) -> Path:
    """timm's ViT-Tiny/16 at 224 px, randomly initialised with seed 0, without its
    classifier: a plain state dict (.pth), which clbench's --weights reads through timm
    and the official side through torch.load (any torch, any timm)."""
    if path.is_file():
        return path
    import timm
    import torch

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    torch.save(model.state_dict(), path)
    return path


# --- measuring one process --------------------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    wall_s: float
    peak_rss_mib: float
    tasks: int  # the sanity check: the same number of tasks on both sides
    last_accuracy: float
    average_accuracy: float


def child_env(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The same limits for both sides: ``threads`` intra-op threads, no GPU, no hub."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.update(CUDA_VISIBLE_DEVICES="", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def run_measured(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, float]:
    """Wall seconds from launch to exit and the child's peak RSS (MiB, from its rusage).

    The child must do its work itself: a watcher looks for grandchildren (whose memory
    ``ru_maxrss`` would not include) and the run fails if any appear, but for ``git``,
    which clbench runs for a few milliseconds to record the code's commit."""
    spawned: dict[int, str] = {}
    done = threading.Event()
    with log.open("w") as out:
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        threading.Thread(target=_watch, args=(child.pid, spawned, done), daemon=True).start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        done.set()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise SystemExit(f"{' '.join(argv)} failed ({code}); log {log}:\n{tail}")
    working = {pid: name for pid, name in spawned.items() if name != "git"}
    if working:
        raise SystemExit(f"{argv[0]} started processes {working}, which its peak RSS "
                         f"does not cover; log {log}")  # fmt: skip
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def _watch(pid: int, spawned: dict[int, str], done: threading.Event) -> None:
    """Collect the processes whose parent is ``pid``, every 0.2 s until it has exited."""
    while not done.wait(0.2):
        spawned.update(_children(pid))


def _children(pid: int) -> dict[int, str]:
    """Process id -> command name, from /proc/*/stat ("pid (name) state parent ...");
    /proc/PID/task/*/children needs a kernel option that not every kernel has."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            name, fields = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1]
            parent = int(fields.split()[1])
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
        if parent == pid:
            found[int(stat.parent.name)] = name
    return found


# --- the two sides ----------------------------------------------------------------------
def run_official(
    official: Official, copy: Path, python: str, threads: int, log: Path
) -> Measurement:
    argv = [python, "main.py", "--config", "exps/clbench_bench.json"]
    wall, rss = run_measured(argv, copy, child_env(threads), log)
    curve = _official_curve(log.read_text())
    return Measurement(wall, rss, len(curve), curve[-1], sum(curve) / len(curve))


def _official_curve(output: str) -> list[float]:
    """Top-1 accuracy after each task, from the last 'CNN top1 curve: [...]' the code logs
    (under numpy 2 its items print as ``np.float64(18.0)``)."""
    curves = re.findall(r"CNN top1 curve: \[([^\]]*)\]", output)
    if not curves:
        raise SystemExit("the official run printed no 'CNN top1 curve'")
    values = re.sub(r"np\.float\d+", "", curves[-1])
    return [float(v) for v in re.findall(r"\d+(?:\.\d+)?", values)]


def run_clbench(
    official: Official,
    images: Path,
    weights: Path,
    threads: int,
    work: Path,
    log: Path,
    augment: bool,
) -> Measurement:
    cache, output = work / "cache", work / "runs"
    for folder in (cache, output):
        if folder.exists():
            shutil.rmtree(folder)
    clbench = Path(sys.executable).with_name("clbench")
    command = [str(clbench)] if clbench.is_file() else [sys.executable, "-m", "cl_bench"]
    argv = [*command, "evaluate", "--strategy", official.strategy, "--stream", str(images),
            "--initial-classes", "5", "--increment", "5", "--seed", str(SEED),
            "--backbone", "timm:vit_tiny_patch16_224", "--weights", str(weights),
            "--device", "cpu", "--threads", str(threads), "--output", str(output)]  # fmt: skip
    for assignment in (*official.clbench_sets, f"augment={str(augment).lower()}"):
        argv += ["--set", assignment]
    env = child_env(threads, {"CLBENCH_CACHE_DIR": str(cache)})
    wall, rss = run_measured(argv, ROOT, env, log)
    [record] = output.rglob("seed*.json")
    metrics = json.loads(record.read_text())["metrics"]
    return Measurement(wall, rss, len(metrics["accuracy_curve"]), metrics["last_accuracy"],
                       metrics["average_incremental_accuracy"])  # fmt: skip


# --- the table ---------------------------------------------------------------------------
def best(runs: list[Measurement]) -> Measurement:
    """Best of N: the shortest wall time and the lowest peak RSS (each over all runs)."""
    first = runs[0]
    return Measurement(
        min(r.wall_s for r in runs),
        min(r.peak_rss_mib for r in runs),
        first.tasks,
        first.last_accuracy,
        first.average_accuracy,
    )


def table(
    results: dict[str, tuple[Measurement, Measurement]], repeat: int, threads: int, augment: bool
) -> str:
    recipe = ("the official augmentation (RandomResizedCrop + flip; clbench augment=true)"
              if augment else "no augmentation (the official code's training transform "
              "replaced by its evaluation transform; clbench augment=false)")  # fmt: skip
    lines = [
        f"Best of {repeat}; {os.cpu_count()} CPUs, {threads} threads each, one process at a "
        f"time, no GPU; both sides: {recipe}.",
        "",
        "| | official | clbench | clbench / official |",
        "|---|---:|---:|---:|",
    ]
    for name, (official, ours) in results.items():
        for label, unit, get in (("wall time", "s", "wall_s"), ("peak RSS", "MiB", "peak_rss_mib")):
            a, b = getattr(official, get), getattr(ours, get)
            lines.append(f"| {name} {label} ({unit}) | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    lines.append("")
    for name, (official, ours) in results.items():
        lines.append(
            f"{name} accuracy, last / average incremental (%): official "
            f"{official.last_accuracy:.2f} / {official.average_accuracy:.2f} "
            f"({official.tasks} tasks), clbench {ours.last_accuracy:.2f} / "
            f"{ours.average_accuracy:.2f} ({ours.tasks} tasks)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sema", type=Path, help="checkout of SEMA-CL (commit 5a45512)")
    parser.add_argument("--mos", type=Path, help="checkout of AAAI25-MOS")
    parser.add_argument(
        "--pilot", type=Path, help="checkout of LAMDA-PILOT (commit 2647455): its APER and EASE"
    )
    parser.add_argument("--pilot-python",
                        help="interpreter for LAMDA-PILOT, which needs timm 0.6 (default: "
                        "--official-python)")  # fmt: skip
    parser.add_argument("--work", type=Path, help="image folder, weights, copies, logs")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; best of them")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--official-python", default=sys.executable,
                        help="interpreter with the official code's packages (torch, "
                        "torchvision, timm, easydict, tqdm, scipy)")  # fmt: skip
    parser.add_argument("--augment", action="store_true",
                        help="both sides train with the official augmentation (default: "
                             "neither does)")  # fmt: skip
    parser.add_argument("--list-changes", action="store_true",
                        help="print the changes made to the official code, and exit")  # fmt: skip
    args = parser.parse_args()
    if args.list_changes:
        print("\n\n".join(describe(o) for o in OFFICIALS.values()))
        return
    given = (("sema", args.sema), ("mos", args.mos), ("aper", args.pilot), ("ease", args.pilot))
    checkouts = {key: path for key, path in given if path}
    if not checkouts:
        parser.error("give --sema, --mos and/or --pilot (checkouts of the official code)")
    if args.repeat < 1 or args.threads < 1:
        parser.error("--repeat and --threads must be at least 1")
    work = (args.work or Path(tempfile.mkdtemp(prefix="clbench-vs-official-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    images = build_image_folder(work / "clipart20")
    weights = build_weights(work / "vit_tiny_patch16_224-seed0.pth")
    print(f"work folder {work}: {images.name}/, {weights.name}")

    def interpreter(name: str) -> str:
        return os.path.abspath(shutil.which(name) or name)

    pythons = {key: interpreter(args.official_python) for key in ("sema", "mos")}
    pilot_python = interpreter(args.pilot_python or args.official_python)
    pythons.update(aper=pilot_python, ease=pilot_python)
    results = {}
    for key, checkout in checkouts.items():
        official = OFFICIALS[key]
        try:
            copy = work / f"official-{key}"
            prepare(official, checkout.resolve(), copy, images, weights, args.augment)
        except ChangeDoesNotApply as error:
            raise SystemExit(f"{official.name}: {error}") from None
        theirs, ours = [], []
        for i in range(args.repeat):  # interleaved, so that drift hits both sides alike
            theirs.append(run_official(official, copy, pythons[key], args.threads,
                                       work / f"{key}-official-{i}.log"))  # fmt: skip
            print(f"{official.name} official run {i + 1}: {theirs[-1]}", flush=True)
            log = work / f"{key}-clbench-{i}.log"
            ours.append(run_clbench(official, images, weights, args.threads,
                                    work / f"clbench-{key}", log, args.augment))  # fmt: skip
            print(f"{official.name} clbench run {i + 1}: {ours[-1]}", flush=True)
        results[official.name] = (best(theirs), best(ours))
    print()
    print(table(results, args.repeat, args.threads, args.augment))


if __name__ == "__main__":
    main()
