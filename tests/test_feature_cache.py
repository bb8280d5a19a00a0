from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cl_bench.models.feature_cache import FeatureCache
from cl_bench.utils.errors import ClbenchError

ROOT = Path(__file__).resolve().parents[1]
KEY = {"backbone": "lite0", "stream": "offline-mix", "split": "train", "limit": None}


class Counting:
    """A compute function that remembers how often it ran."""

    def __init__(self, make: Callable[[], torch.Tensor]):
        self.make = make
        self.calls = 0

    def __call__(self) -> torch.Tensor:
        self.calls += 1
        return self.make()


def features(seed: int = 0) -> torch.Tensor:
    return torch.randn(16, 8, generator=torch.Generator().manual_seed(seed))


def entry_files(root: Path) -> list[Path]:
    return sorted(root.glob("*.pt"))


def test_miss_stores_then_hit_skips_compute(tmp_path: Path) -> None:
    store = FeatureCache(tmp_path)
    compute = Counting(features)
    first = store.get_or_compute(KEY, compute)
    assert compute.calls == 1
    assert torch.equal(first, features()) and first.dtype == torch.float32
    assert len(entry_files(tmp_path)) == 1

    again = FeatureCache(tmp_path)  # a fresh instance reads it from disk
    second = again.get_or_compute(KEY, compute)
    assert compute.calls == 1
    assert torch.equal(second, features()) and second.dtype == first.dtype
    assert (store.hits, store.misses, again.hits, again.misses) == (0, 1, 1, 0)


@pytest.mark.parametrize(
    "tensor",
    [
        torch.arange(12, dtype=torch.int64).reshape(3, 4),
        torch.ones(2, 3, dtype=torch.bfloat16),
        torch.tensor([True, False]),
        torch.tensor(2.5, dtype=torch.float64),
        torch.zeros(0, 4),
        torch.arange(100.0)[::7],  # not contiguous
    ],
)
def test_round_trip_keeps_values_and_dtype(tmp_path: Path, tensor: torch.Tensor) -> None:
    FeatureCache(tmp_path).get_or_compute(KEY, lambda: tensor)
    loaded = FeatureCache(tmp_path).get_or_compute(KEY, pytest.fail)
    assert loaded.dtype == tensor.dtype and torch.equal(loaded, tensor)
    assert loaded.device.type == "cpu"


def test_a_view_stores_only_its_own_elements(tmp_path: Path) -> None:
    base = torch.zeros(1_000_000)  # 4 MB
    FeatureCache(tmp_path).get_or_compute(KEY, lambda: base[:10])
    (entry,) = entry_files(tmp_path)
    assert entry.stat().st_size < 100_000


def test_keys_select_entries_and_dict_order_does_not_matter(tmp_path: Path) -> None:
    store = FeatureCache(tmp_path)
    store.get_or_compute({"a": 1, "b": {"x": 1, "y": 2}}, lambda: features(1))
    store.get_or_compute({"a": 2, "b": {"x": 1, "y": 2}}, lambda: features(2))
    assert len(entry_files(tmp_path)) == 2

    reordered = store.get_or_compute({"b": {"y": 2, "x": 1}, "a": 1}, pytest.fail)
    assert torch.equal(reordered, features(1))
    assert len(entry_files(tmp_path)) == 2


def test_disabled_always_computes_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "features"
    store = FeatureCache(root, enabled=False)
    compute = Counting(features)
    for _ in range(3):
        assert torch.equal(store.get_or_compute(KEY, compute), features())
    assert compute.calls == 3 and store.misses == 3 and store.hits == 0
    assert not root.exists()


def test_key_that_is_not_json_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ClbenchError, match="plain JSON"):
        FeatureCache(tmp_path).get_or_compute({"path": tmp_path}, features)


@pytest.mark.parametrize("damage", ["truncate-half", "zero-bytes", "flip-tensor-byte"])
def test_damaged_entry_warns_and_is_rebuilt(tmp_path: Path, damage: str) -> None:
    store = FeatureCache(tmp_path)
    store.get_or_compute(KEY, features)
    (entry,) = entry_files(tmp_path)
    data = entry.read_bytes()
    if damage == "truncate-half":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "zero-bytes":
        entry.write_bytes(b"")
    else:  # still a valid archive: only the checksum can tell
        raw = features().numpy().tobytes()
        at = data.index(raw) + 5
        entry.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])

    compute = Counting(features)
    with pytest.warns(UserWarning, match=rf"{entry.name}.*corrupt.*rebuilding"):
        rebuilt = store.get_or_compute(KEY, compute)
    assert compute.calls == 1 and torch.equal(rebuilt, features())

    after = FeatureCache(tmp_path).get_or_compute(KEY, pytest.fail)  # no warning, no compute
    assert torch.equal(after, features())


def test_entry_holding_another_key_is_rebuilt(tmp_path: Path) -> None:
    store = FeatureCache(tmp_path)
    key_a, key_b = {**KEY, "split": "train"}, {**KEY, "split": "test"}
    store.get_or_compute(key_a, lambda: features(1))
    store.get_or_compute(key_b, lambda: features(2))
    path_a, path_b = store.path_for(key_a), store.path_for(key_b)
    path_a.write_bytes(path_b.read_bytes())

    with pytest.warns(UserWarning, match="different key"):
        rebuilt = store.get_or_compute(key_a, lambda: features(1))
    assert torch.equal(rebuilt, features(1))
    assert torch.equal(store.get_or_compute(key_b, pytest.fail), features(2))


CONCURRENT_FILL = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    import torch

    from cl_bench.models.feature_cache import FeatureCache

    root, log, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    (root.parent / f"ready-{name}").touch()
    deadline = time.monotonic() + 30
    while len(list(root.parent.glob("ready-*"))) < 2:  # start both fills together
        assert time.monotonic() < deadline, "the other process never started"
        time.sleep(0.01)

    def compute():
        with log.open("a") as handle:
            handle.write(name + "\\n")
        time.sleep(1.0)
        return torch.arange(1000, dtype=torch.float32).reshape(10, 100) / 7

    store = FeatureCache(root)
    tensor = store.get_or_compute({"what": "concurrent", "n": 1000}, compute)
    print(json.dumps({"values": tensor.flatten().tolist(), "hits": store.hits}))
    """
)


def test_two_processes_fill_one_entry_once(tmp_path: Path) -> None:
    root, log = tmp_path / "features", tmp_path / "compute.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_FILL, str(root), str(log), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("first", "second")
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))

    expected = torch.arange(1000, dtype=torch.float32).reshape(10, 100) / 7
    assert log.read_text().count("\n") == 1  # compute ran once, in one of them
    assert sorted(result["hits"] for result in results) == [0, 1]
    assert results[0]["values"] == results[1]["values"] == expected.flatten().tolist()
    assert len(entry_files(root)) == 1
    stored = FeatureCache(root).get_or_compute({"n": 1000, "what": "concurrent"}, pytest.fail)
    assert torch.equal(stored, expected)


def test_info_and_clear(tmp_path: Path) -> None:
    root = tmp_path / "features"
    store = FeatureCache(root)
    assert store.info().entries == 0 and store.info().bytes == 0  # root not there yet
    assert store.clear() == 0

    for i in range(3):
        store.get_or_compute({"i": i}, lambda i=i: features(i))
    stray = root / f".{entry_files(root)[0].name}.abc123.tmp"
    stray.write_bytes(b"partial")
    foreign = root / "notes.txt"
    foreign.write_text("not ours")

    info = store.info()
    assert info.root == root and info.entries == 3
    assert info.bytes == sum(path.stat().st_size for path in entry_files(root))

    assert store.clear() == 3
    assert store.info().entries == 0 and store.info().bytes == 0
    assert sorted(path.name for path in root.iterdir()) == ["notes.txt"]  # locks, temps gone


def test_default_root_is_under_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLBENCH_CACHE_DIR", str(tmp_path))
    assert FeatureCache().info().root == tmp_path / "features"
