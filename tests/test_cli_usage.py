"""Usage errors of the CLI: every command reports a wrong command line the same way (stderr, exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fipviton.cli import main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("command", ["parser", "warp", "tryon"])
@pytest.mark.parametrize("option", ["--steps", "--batch-size"])
def test_training_refuses_non_positive_sizes(
    command: str, option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code, stdout, err = run(["train", command, "--data", str(tmp_path), "--out", str(out), option, "0"], capsys)
    assert code == 2
    assert err.strip() == "error: --steps and --batch-size must be positive"
    assert stdout == ""
    assert not out.exists()


def test_training_reports_a_missing_data_folder_as_a_data_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["train", "tryon", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and "absent: no such directory" in err


@pytest.mark.parametrize("command", ["tryon-average", "parser-average"])
def test_averaging_never_writes_into_an_existing_folder(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("the user's")
    code, _, err = run(["train", command, str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)], capsys)
    assert code == 2 and f"{out} exists; choose a new folder" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "the user's"


def test_framing_statistics_of_a_folder_that_is_no_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["data", "framing", str(tmp_path)], capsys)
    assert code == 2 and "not a known dataset layout" in err


@pytest.mark.parametrize(
    "command",
    [["try-on", "person.jpg", "garment.jpg", "-o", "out.png"], ["serve"], ["eval", "pipeline", "--data", "d"]],
)
def test_postprocess_overrides_are_checked_before_anything_runs(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--postprocess", "backdrop_tolerance=lots"])
    assert exited.value.code == 2
    assert "argument --postprocess: backdrop_tolerance takes a number, got 'lots'" in capsys.readouterr().err


def test_serve_passes_the_postprocess_overrides_to_every_pipeline() -> None:
    from fipviton.cli._postprocess_option import postprocess_config
    from fipviton.cli.serve_commands import load_pipelines

    config = postprocess_config(["restore_identity=false", "blend=feather"])
    pipelines = load_pipelines(2, None, None, None, warmup=False, postprocess=config)
    assert [p.postprocess for p in pipelines] == [config, config]
    assert not config.restore_identity and config.blend == "feather"
    assert postprocess_config([]) is None
