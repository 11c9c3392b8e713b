"""One name per concept (docs/cli.md): every renamed flag and recipe key still works under its old spelling,
fills the same setting, and says once, on one line, what the new name is."""
from __future__ import annotations

import pytest

from edgekd.cli import build_parser
from edgekd.errors import EdgekdError
from edgekd.training.recipe import RENAMED_KEYS, load_recipe

BASE = {
    "train": ["train", "--arch", "unet_tiny", "--data", "d", "--out", "o.safetensors"],
    "distill": ["distill", "--data", "d", "--out", "o.safetensors"],
    "eval": ["eval", "c.safetensors", "--data", "d"],
    "bench": ["bench"],
    "export": ["export", "c.safetensors"],
    "demo": ["demo"],
    "data inspect": ["data", "inspect", "d"],
    "data synth": ["data", "synth", "o"],
}
# (command, old flag, new flag, value, dest, parsed value)
RENAMES = [
    ("train", "--eval-size", "--eval-input-size", "32x48", "eval_input_size", (32, 48)),
    ("train", "--val-images", "--eval-images", "3", "eval_images", 3),
    ("distill", "--eval-size", "--eval-input-size", "32x48", "eval_input_size", (32, 48)),
    ("distill", "--val-images", "--eval-images", "3", "eval_images", 3),
    ("distill", "--student-size", "--student-input-size", "24x32", "student_input_size", (24, 32)),
    ("eval", "--max-images", "--eval-images", "3", "eval_images", 3),
    ("bench", "--accuracy-images", "--eval-images", "3", "eval_images", 3),
    ("export", "--calib-size", "--calib-images", "7", "calib_images", 7),
    ("demo", "--bench-seconds", "--duration", "0.5", "duration", 0.5),
    ("data inspect", "--max-items", "--inspect-images", "5", "inspect_images", 5),
    ("data synth", "--size", "--image-size", "64x96", "image_size", (64, 96)),
]


@pytest.mark.parametrize("command, old, new, value, dest, parsed", RENAMES)
def test_old_flag_warns_once_and_fills_the_new_setting(command, old, new, value, dest, parsed, capsys):
    args = build_parser().parse_args(BASE[command] + [old, value, old, value])
    assert getattr(args, dest) == parsed
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: {old} is deprecated; use {new} (same meaning, see docs/cli.md)"]


@pytest.mark.parametrize("command, old, new, value, dest, parsed", RENAMES)
def test_new_flag_is_silent_and_the_only_one_in_help(command, old, new, value, dest, parsed, capsys):
    args = build_parser().parse_args(BASE[command] + [new, value])
    assert getattr(args, dest) == parsed
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        build_parser().parse_args(BASE[command][:2 if command.startswith("data") else 1] + ["--help"])
    shown = capsys.readouterr().out
    assert f"{new} " in shown and f"{old} " not in shown and f"{old}," not in shown


def test_a_later_new_flag_still_wins_over_an_earlier_old_one():
    args = build_parser().parse_args(BASE["eval"] + ["--max-images", "5", "--eval-images", "2"])
    assert args.eval_images == 2


def _recipe(tmp_path, text: str):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return load_recipe(path)


def test_recipe_keys_follow_the_flag_names(tmp_path, capsys):
    [(_, cfg)] = _recipe(tmp_path, "{student: unet_tiny, data: d, out: s.safetensors, teachers: [t.safetensors], "
                                   "losses: [ce, kd], eval_images: 3, eval_input_size: [32, 48], student_input_size: [24, 32]}\n")
    assert (cfg.arch, cfg.teachers, cfg.losses, cfg.val_images) == ("unet_tiny", ["t.safetensors"], ["ce", "kd"], 3)
    assert cfg.eval_size == (32, 48) and tuple(cfg.student_size) == (24, 32)
    assert capsys.readouterr().err == ""


def test_old_and_singular_recipe_keys_load_with_one_warning_each(tmp_path, capsys):
    [(_, cfg)] = _recipe(tmp_path, "{arch: unet_tiny, data: d, out: s.safetensors, teacher: t.safetensors, "
                                   "teacher_arch: unet_tiny, loss: [ce, kd], val_images: 3, eval_size: [32, 48]}\n")
    assert (cfg.arch, cfg.teachers, cfg.teacher_archs, cfg.losses) == ("unet_tiny", ["t.safetensors"], ["unet_tiny"], ["ce", "kd"])
    assert cfg.val_images == 3 and cfg.eval_size == (32, 48)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 6 and all(line.startswith("warning: ") and "deprecated; use '" in line for line in err)
    assert any("'teacher' is deprecated; use 'teachers'" in line for line in err)


def test_an_old_key_in_common_warns_once_not_per_stage(tmp_path, capsys):
    stages = _recipe(tmp_path, "common: {data: d, val_images: 2}\nstages:\n"
                               "  - {name: a, student: unet_tiny, out: a.safetensors}\n"
                               "  - {name: b, student: unet_tiny, teachers: ['@a'], out: b.safetensors}\n")
    assert [cfg.val_images for _, cfg in stages] == [2, 2]
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_both_spellings_of_one_key_is_an_error(tmp_path):
    with pytest.raises(EdgekdError, match="both 'loss' and 'losses'"):
        _recipe(tmp_path, "{student: unet_tiny, data: d, out: s.safetensors, loss: [ce], losses: [kd]}\n")


def test_unknown_recipe_key_lists_the_new_names():
    from edgekd.training.recipe import _ALLOWED

    assert {"student", "teachers", "losses", "eval_images", "eval_input_size", "student_input_size"} <= _ALLOWED
    assert not set(RENAMED_KEYS) & _ALLOWED


def test_docs_cli_md_lists_every_rename_and_every_flag():
    import argparse
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    for _, old, new, *_ in RENAMES:
        assert f"`{old} " in text and f"`{new} " in text, (old, new)
    for old, new in RENAMED_KEYS.items():
        assert f"| `{old}` | `{new}` |" in text
    rows = {line.split("|")[1].strip().strip("`"): line for line in text.split("## Every flag")[1].splitlines()
            if line.startswith("| `")}
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for full, p in ([(f"{name} {n}", sp) for n, sp in nested[0].choices.items()] if nested else [(name, parser)]):
            for action in p._actions:
                flag = action.option_strings[0] if action.option_strings else None
                if flag and action.dest not in ("help", "debug") and action.help != argparse.SUPPRESS \
                        and not flag.startswith(("--coreml-", "--trt-", "--litert-", "--executorch-")) and full != "distill":
                    assert f"`{flag}`" in rows[full], (full, flag)
