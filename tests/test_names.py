"""Names from specs, records, grids and the command line reach the file system by one rule
(cl_bench/utils/names.py): each becomes one path component by a fixed mapping, and no
path built from names leaves the folder the user gave."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cli_runner import clbench
from hypothesis import assume, example, given
from hypothesis import strategies as st
from test_records import fake_record
from test_standard_streams import write_image_folder

from cl_bench.results.records import record_path, write_record
from cl_bench.utils.errors import ConfigError, shortened
from cl_bench.utils.names import file_name, path_inside

ROOT = Path(__file__).resolve().parents[1]


def unencodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=300))
@example("a\ud800b")  # a lone surrogate, as JSON's "\ud800" reads
def test_every_name_is_one_component_inside_the_root_or_refused(name):
    root = Path("/srv/clbench-out")
    try:
        mapped = file_name(name, "stream")
    except ConfigError as error:
        assert (not name.strip() or any(ord(c) < 32 or ord(c) == 127 for c in name)
                or unencodable(name))  # fmt: skip
        assert len(str(error)) < 300  # the message quotes the name shortened
        return
    assert mapped and len(mapped) <= 100
    assert "/" not in mapped and "\\" not in mapped and not mapped.startswith(".")
    assert Path(mapped).name == mapped  # one component, neither "." nor ".."
    assert path_inside(root, mapped).resolve().parent == root
    assert file_name(name, "stream") == mapped  # always the same mapping


@given(st.from_regex(r"[a-z0-9_](-?[a-z0-9_.+])*", fullmatch=True).filter(lambda n: len(n) < 90))
def test_plain_names_are_kept(name):
    assert file_name(name) == name


NEAR_MISSES = st.text(alphabet="-:/\\.%~a", min_size=1, max_size=12)


@given(NEAR_MISSES, NEAR_MISSES)
@example("timm:a/b", "timm/a:b")
@example("a:b", "a--b")
@example("-:", ":-")
def test_no_two_names_share_a_file(first, second):
    """Records of two runs must never overwrite each other, nor a sweep take one run's
    record for another's (it skips runs whose record exists)."""
    assume(first != second and first.strip() and second.strip())
    assert file_name(first) != file_name(second)


def test_long_names_keep_apart_from_short_ones():
    long = "a" * 120
    short = file_name(long)[:80] + "-" + file_name(long)[81:]
    assert len(file_name(long)) == 97 and file_name(short) != file_name(long)


@pytest.mark.parametrize(
    ("name", "mapped"),
    [
        ("avalanche:naive", "avalanche--naive"),  # the committed records' layout
        ("timm:org/x", "timm--org%2Fx"),
        ("timm--org:x", "timm%2D%2Dorg--x"),  # a literal "--" is never read as ":"
        ("a-:b", "a%2D--b"),
        ("a-b", "a-b"),
        ("../../escape", "%2E.%2F..%2Fescape"),
        ("/etc/passwd", "%2Fetc%2Fpasswd"),
        (".hidden", "%2Ehidden"),
        ("a b?", "a%20b%3F"),
    ],
)
def test_the_mapping(name, mapped):
    assert file_name(name) == mapped


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "line\nbreak", 7, None])
def test_empty_non_text_and_control_names_are_refused(name):
    with pytest.raises(ConfigError, match="stream"):
        file_name(name, "stream")


def test_a_record_path_stays_inside_its_root(tmp_path):
    path = record_path(tmp_path, stream="/tmp/x", strategy="../..", backbone="b", seed=1,
                       variant="")  # fmt: skip
    assert path.resolve().is_relative_to(tmp_path.resolve())
    with pytest.raises(ConfigError, match="seed"):
        record_path(tmp_path, stream="s", strategy="a", backbone="b", seed="1", variant="")


def test_messages_quote_a_huge_value_shortened():
    assert len(shortened("x" * 10_000_000)) <= 200


def test_a_record_naming_an_absolute_stream_writes_only_inside_out(tmp_path):
    target = tmp_path / "elsewhere" / "escape"
    for seed in (1, 2):
        record = fake_record("a", seed, 50.0)
        record["stream"] = str(target)
        write_record(tmp_path / "runs" / f"r{seed}.json", record)
    code, _, err = clbench("leaderboard", "--runs", str(tmp_path / "runs"),
                           "--out", str(tmp_path / "out"))  # fmt: skip
    assert code == 0, err
    assert not (tmp_path / "elsewhere").exists()
    name = file_name(str(target))
    assert {p.name for p in (tmp_path / "out").glob(f"{name}*")} == {
        f"{name}.csv",
        f"{name}.md",
        f"{name}-curves.png",
    }


def test_a_spec_named_to_escape_keeps_its_files_inside_the_folders_given(tmp_path):
    spec = yaml.safe_load((ROOT / "streams" / "offline-mix.yaml").read_text())
    spec["name"] = "../../escape"
    spec_file = tmp_path / "work" / "spec.yaml"
    spec_file.parent.mkdir()
    spec_file.write_text(yaml.safe_dump(spec))
    cache, out = tmp_path / "work" / "cache", tmp_path / "work" / "runs"
    code, _, err = clbench("--cache-dir", str(cache), "evaluate", "--strategy", "simplecil",
                           "--stream", str(spec_file), "--limit-per-class", "1",
                           "--output", str(out))  # fmt: skip
    assert code == 0, err
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != spec_file]
    assert written and all(p.is_relative_to(cache) or p.is_relative_to(out) for p in written)
    [record] = out.rglob("seed1993*.json")
    assert json.loads(record.read_text())["stream"] == "../../escape"
    spec["name"] = ""
    spec_file.write_text(yaml.safe_dump(spec))
    code, _, err = clbench("--cache-dir", str(cache), "evaluate", "--strategy", "simplecil",
                           "--stream", str(spec_file), "--output", str(out))  # fmt: skip
    assert code == 2 and "name must not be empty" in " ".join(err.split())


def escaping_spec(folder: Path) -> Path:
    spec = yaml.safe_load((ROOT / "streams" / "offline-mix.yaml").read_text())
    spec["name"] = "../../escape"
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def files_outside(root: Path, *allowed: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()
            and not any(p.is_relative_to(folder) for folder in allowed)]  # fmt: skip


@pytest.mark.slow
def test_a_grid_naming_an_escaping_spec_keeps_every_file_inside_the_folders_given(tmp_path):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    grid = work / "grid.yaml"
    grid.write_text(yaml.safe_dump({"strategy": ["simplecil"], "limit-per-class": 1,
                                    "stream": [str(escaping_spec(work))]}))  # fmt: skip
    cache, runs, boards = folders = [work / "cache", work / "runs", work / "lb"]
    code, _, err = clbench("--cache-dir", str(cache), "sweep", "--grid", str(grid),
                           "--output", str(runs), "--leaderboards", str(boards))  # fmt: skip
    assert code == 0, err
    assert list(boards.glob("%2E.%2F..%2Fescape.csv"))
    assert files_outside(tmp_path, *folders, grid, work / "spec.yaml") == []


def test_an_image_folder_given_through_dot_dot_keeps_its_records_inside_output(tmp_path):
    write_image_folder(tmp_path / "imgs", classes=2)
    (tmp_path / "a").mkdir()
    stream = str(tmp_path / "a" / ".." / "imgs")
    folders = [tmp_path / "cache", tmp_path / "runs"]
    code, _, err = clbench("--cache-dir", str(folders[0]), "evaluate", "--strategy",
                           "simplecil", "--stream", stream, "--increment", "1",
                           "--output", str(folders[1]))  # fmt: skip
    assert code == 0, err
    [record] = folders[1].rglob("seed*.json")
    assert record.relative_to(folders[1]).parts[0] == "imgs-b0inc1"
    assert files_outside(tmp_path, *folders, tmp_path / "imgs") == []


def test_a_deeply_nested_huge_value_is_quoted_shortened_and_fast():
    layer: list = ["x" * 1000] * 1000
    for _ in range(10):  # 1000^10 strings if printed whole: an alias bomb's shape
        layer = [layer] * 1000
    assert len(shortened(layer)) <= 200


@pytest.mark.parametrize("html", ["out", "."])
def test_a_site_folder_holding_the_leaderboards_is_refused_before_any_write(tmp_path, html):
    for seed in (1, 2):
        write_record(tmp_path / "runs" / f"r{seed}.json", fake_record("a", seed, 50.0))
    out = tmp_path / "out"
    code, _, err = clbench("leaderboard", "--runs", str(tmp_path / "runs"), "--out", str(out),
                           "--html", str(tmp_path / html))  # fmt: skip
    assert code == 2 and "--html" in " ".join(err.split())
    assert not out.exists()  # refused before the first leaderboard file


def test_a_spec_class_cannot_read_outside_the_packaged_images(tmp_path):
    """A source's class names are folders under its data: never a way out of it."""
    spec = yaml.safe_load((ROOT / "streams" / "offline-mix.yaml").read_text())
    [clipart] = [source for source in spec["sources"] if source["kind"] == "openclipart"]
    clipart["classes"][0] = "../../../../etc"
    spec["name"] = "escaping-classes"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    code, _, err = clbench("--cache-dir", str(tmp_path / "cache"), "evaluate", "--strategy",
                           "simplecil", "--stream", str(spec_file), "--output",
                           str(tmp_path / "runs"))  # fmt: skip
    assert code == 2 and "would lie outside" in " ".join(err.split())
    assert not (tmp_path / "runs").exists()
