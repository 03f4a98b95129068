"""The YAML the configuration is written in: YAML 1.2, no duplicate keys, no bombs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from erpbridge.config import load_config
from erpbridge.errors import ConfigError
from erpbridge.yamlfile import MAX_DEPTH, read_yaml


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return [str(p) for p in info.value.problems]


def timed_problems(tmp_path: Path, text: str) -> list[str]:
    started = time.process_time()
    found = problems(tmp_path, text)
    # Well under a second of CPU (wall time on a loaded test machine says little).
    assert time.process_time() - started < 1.0
    return found


def test_yes_no_on_off_are_strings() -> None:
    data = read_yaml("a: yes\nb: no\nc: NO\nd: on\ne: off\nf: y\ng: true\nh: 010\n", "f").data
    assert data == {"a": "yes", "b": "no", "c": "NO", "d": "on", "e": "off", "f": "y"} | {
        "g": True,
        "h": 10,
    }


def test_a_bare_no_reaches_the_flow_as_a_column_name(tmp_path: Path) -> None:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(
        "channels:\n  shop: {system: folder, options: {path: inbox}}\n"
        "flows:\n  - {name: f, channel: shop, entity: customer, direction: in,\n"
        "     description: on, mapping: {code: NO, name: yes}}\n",
        encoding="utf-8",
    )
    flow = load_config(path, env={}).flow("f")
    assert flow.description == "on"
    assert flow.mapping == {"code": "NO", "name": "yes"}


def test_a_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    text = (
        "channels:\n"
        "  shop:\n"
        "    system: folder\n"
        "    options: {path: inbox}\n"
        "    system: sql\n"
        "  shop:\n"
        "    system: folder\n"
    )
    assert problems(tmp_path, text) == [
        "erpbridge.yaml:5 channels.shop.system: duplicate key 'system' (lines 3 and 5)",
        "erpbridge.yaml:6 channels.shop: duplicate key 'shop' (lines 2 and 6)",
        "erpbridge.yaml:6 channels.shop.options.path: required setting is missing",
    ]


def test_an_alias_bomb_is_one_clear_error(tmp_path: Path) -> None:
    text = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    previous = "a"
    for name in "bcdefghi":
        text += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    assert timed_problems(tmp_path, text) == [
        "erpbridge.yaml:7: aliases expand the file to more than 100000 values (at alias *f)"
    ]


def test_an_alias_inside_its_own_node(tmp_path: Path) -> None:
    assert timed_problems(tmp_path, "a: &a [1, *a]\n") == [
        "erpbridge.yaml:1: alias *a refers to a node that contains it"
    ]


def test_aliases_nesting_too_deep(tmp_path: Path) -> None:
    deep = "[" * 90 + "1" + "]" * 90
    text = f"a: &a {deep}\nb: {'[' * 20}*a{']' * 20}\n"
    assert timed_problems(tmp_path, text) == [
        f"erpbridge.yaml:2: aliases nest the file deeper than {MAX_DEPTH} levels (at alias *a)"
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("x: " + "[" * 5000 + "]" * 5000 + "\n", 1),
        ("x: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", 1),
        ("x:\n" + "- " * 5000 + "1\n", 2),
        ("".join(" " * i + f"k{i}:\n" for i in range(5000)), MAX_DEPTH),
    ],
    ids=["flow lists", "flow mappings", "block lists", "block mappings"],
)
def test_5000_nesting_levels_are_one_clear_error(tmp_path: Path, text: str, line: int) -> None:
    assert timed_problems(tmp_path, text) == [
        f"erpbridge.yaml:{line}: nested deeper than {MAX_DEPTH} levels"
    ]


def test_a_yaml_1_1_directive_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, "%YAML 1.1\n---\nflows: []\n") == [
        "erpbridge.yaml:1: %YAML 1.1: erpbridge reads YAML 1.2 only; remove the directive"
    ]


def test_python_tags_are_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, "hub: {database_url: !!python/object:os.system ls}\n")
    assert found[0] == (
        "erpbridge.yaml:1 hub.database_url: unsupported tag "
        "tag:yaml.org,2002:python/object:os.system"
    )


def test_anchors_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(
        "channels:\n"
        "  a: &folder {system: folder, options: {path: inbox}, description: first}\n"
        "  b:\n"
        "    <<: *folder\n"
        "    description: second\n",
        encoding="utf-8",
    )
    channels = load_config(path, env={}).model.channels
    assert channels["b"].system == "folder" and channels["b"].options == {"path": "inbox"}
    assert (channels["a"].description, channels["b"].description) == ("first", "second")


def test_a_problem_in_a_merged_key_points_at_its_source_line(tmp_path: Path) -> None:
    text = (
        "channels:\n"
        "  a: &folder\n"
        "    system: folder\n"
        "    options: {path: inbox, max_file_mb: -1}\n"
        "  b: {<<: *folder, description: b}\n"
    )
    assert problems(tmp_path, text) == [
        "erpbridge.yaml:4 channels.a.options.max_file_mb: Input should be greater than 0",
        "erpbridge.yaml:4 channels.b.options.max_file_mb: Input should be greater than 0",
    ]
