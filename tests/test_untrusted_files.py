"""Specs, grids and records are read defensively (cl_bench/utils/untrusted.py): no YAML
aliases, no duplicate keys, UTF-8 only, bounded size and depth; every refusal is exit 2
with a message smaller than its cause, naming the file and the bad entry."""

from __future__ import annotations

import json

import pytest
from cli_runner import clbench
from test_records import fake_record

from cl_bench.data.spec import StreamSpec
from cl_bench.utils.errors import ConfigError
from cl_bench.utils.untrusted import MAX_BYTES, read_json, read_yaml

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(9)
)  # 443 bytes that expand to 9 * 8^9 strings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BOMB, "aliases"),
        ("name: a\nname: b\n", "duplicate key 'name'"),
        ("a: " + "[" * 40 + "]" * 40 + "\n", "deeper than 32"),
    ],
)
def test_yaml_is_read_without_aliases_duplicates_or_deep_nesting(tmp_path, text, message):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        read_yaml(path, "stream spec")
    assert len(str(caught.value)) < 1000


def test_files_that_are_not_utf8_or_too_large_are_refused(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_yaml(latin, "stream spec")
    huge = tmp_path / "huge.json"
    with huge.open("wb") as file:
        file.truncate(MAX_BYTES + 1)
    with pytest.raises(ConfigError, match="limit"):
        read_json(huge, "run record")


def test_an_alias_bomb_spec_is_refused_quickly_and_briefly(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    code, out, err = clbench("evaluate", "--strategy", "simplecil", "--stream", str(path),
                             "--output", str(tmp_path / "runs"))  # fmt: skip
    assert code == 2 and "aliases" in err and len(out + err) < 1000
    with pytest.raises(ConfigError, match="aliases"):
        StreamSpec.from_yaml(path)


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2, 3]",  # a list, not a record
        '{"format": 1, "format": 2}',  # duplicate keys
        "[" * 5000 + "]" * 5000,  # nested past Python's recursion limit
        '{"a": ' * 40 + "1" + "}" * 40,  # nested past the depth limit
    ],
)
def test_records_that_are_not_objects_or_nest_too_deep_are_refused(tmp_path, text):
    good = fake_record("a", 1, 50.0)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "good.json").write_text(json.dumps(good))
    (tmp_path / "runs" / "bad.json").write_text(text)
    code, out, err = clbench("leaderboard", "--runs", str(tmp_path / "runs"),
                             "--out", str(tmp_path / "out"))  # fmt: skip
    message = " ".join((out + err).split())
    assert code == 2 and "bad.json" in message and "Traceback" not in message
    assert len(message) < 1000 and not (tmp_path / "out").exists()


def test_a_bad_seed_among_many_is_named_by_its_position(tmp_path):
    seeds = list(range(200_000))
    seeds[123_456] = "x"
    grid = tmp_path / "grid.yaml"
    grid.write_text(json.dumps({"strategy": ["simplecil"], "seed": seeds}))  # JSON is YAML
    code, out, err = clbench("sweep", "--grid", str(grid), "--output", str(tmp_path / "runs"),
                             "--leaderboards", str(tmp_path / "lb"))  # fmt: skip
    message = " ".join((out + err).split())
    assert code == 2 and "seed 123457 of 200000 is 'x'" in message and len(message) < 500


def test_a_huge_set_value_is_quoted_shortened(tmp_path):
    code, out, err = clbench("evaluate", "--strategy", "simplecil", "--set",
                             "batch_size=" + "9" * 100_000 + "x",
                             "--output", str(tmp_path / "runs"))  # fmt: skip
    assert code == 2 and "batch_size" in err and len(out + err) < 1000


HUGE = "z" * 100_000


@pytest.mark.parametrize(
    "arguments",
    [
        ["--strategy", HUGE],
        ["--strategy", "simplecil", "--stream", HUGE],
        ["--strategy", "simplecil", "--backbone", HUGE],
        ["--strategy", "simplecil", "--device", HUGE],
        ["--strategy", "simplecil", "--split", HUGE],
        ["--strategy", "simplecil", "--set", HUGE + "=1"],
        ["--strategy", "simplecil", "--set", "batch_size=" + BOMB.replace("\n", "; ")],
    ],
    ids=["strategy", "stream", "backbone", "device", "split", "set-key", "set-alias-bomb"],
)
def test_every_named_value_on_the_command_line_is_quoted_shortened(tmp_path, arguments):
    code, out, err = clbench("evaluate", *arguments, "--output", str(tmp_path / "runs"))
    assert code == 2 and "Traceback" not in err and len(out + err) < 2000
    assert not (tmp_path / "runs").exists()


def test_verify_quotes_a_records_names_shortened(tmp_path):
    record = fake_record("simplecil", 1, 50.0)
    record["stream"] = "z" * 900  # names are at most 1000 characters (schema)
    record["stream_info"] = {"spec_file": "s" * 5000}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(record))
    code, out, err = clbench("verify", str(path))
    message = " ".join((out + err).split())
    assert code == 2 and "r.json" in message and "is not installed" in message
    assert len(message) < 1000
