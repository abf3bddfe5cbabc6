"""`jaxsolve shape conv` / `jaxsolve shape conv-transpose`: printed sizes and one-line errors."""

from __future__ import annotations

import pytest

from jaxsolve.cli import _main
from jaxsolve.shapes import conv_output_shape, conv_transpose_output_shape


@pytest.fixture
def run(monkeypatch, capsys):
    """Run the real ``main`` with only this sub-command registered: (status, stdout, stderr)."""
    monkeypatch.setattr(_main, "_COMMAND_MODULES", ("_shape",))

    def invoke(*argv: str):
        try:
            status = _main.main(["shape", *argv])
        except SystemExit as exc:  # argparse errors exit through the parser
            status = exc.code
        out, err = capsys.readouterr()
        return status, out, err

    return invoke


def test_conv_transpose_example(run):
    status, out, err = run(
        "conv-transpose", "--input", "4", "--kernel", "5", "--stride", "2", "--padding", "SAME"
    )
    assert (status, out, err) == (0, "8\n", "")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["conv", "--input", "4", "--kernel", "5", "--stride", "2", "--padding", "SAME"], "2"),
        (
            ["conv", "--input", "28,28", "--kernel", "5", "--stride", "2", "--padding", "valid"],
            "12,12",
        ),
        (["conv", "--input", "30,30", "--kernel", "3", "--padding", "circular"], "30,30"),
        (["conv", "--input", "10", "--kernel", "3", "--padding", "1:2", "--dilation", "2"], "9"),
        (["conv", "--input", "5", "--kernel", "3", "--padding", "1", "--input-dilation", "2"], "9"),
        (
            ["conv", "--input", "8,6", "--kernel", "3,2", "--stride", "2,1", "--padding", "0:1,1"],
            "4,7",
        ),
        (
            [
                "conv-transpose",
                "--input",
                "4",
                "--kernel",
                "5",
                "--stride",
                "2",
                "--padding",
                "VALID",
            ],
            "11",
        ),
        (
            [
                "conv-transpose",
                "--input",
                "4",
                "--kernel",
                "5",
                "--stride",
                "2",
                "--padding",
                "3:4",
            ],
            "10",
        ),
        (["conv-transpose", "--input", "4", "--kernel", "3", "--padding=-1:0"], "1"),
        (["conv", "--input", "6,9", "--kernel", "3", "--padding", "0:1"], "5,8"),
        (["conv-transpose", "--input", "3,3", "--kernel", "4", "--stride", "2"], "6,6"),
    ],
)
def test_prints_the_library_answer(run, argv, expected):
    status, out, err = run(*argv)
    assert status == 0 and err == ""
    assert out == expected + "\n"


def test_agrees_with_the_library_on_a_grid(run):
    for n in (1, 4, 7):
        for k in (1, 2, 5):
            for s in (1, 2, 3):
                for pad in ("SAME", "VALID", "1:2"):
                    lib_pad = ((1, 2),) if pad == "1:2" else pad
                    common = ["--input", str(n), "--kernel", str(k), "--stride", str(s)]
                    _, out, _ = run("conv", *common, "--padding", pad)
                    assert out.strip() == str(conv_output_shape(n, k, s, lib_pad)[0])
                    _, out, _ = run("conv-transpose", *common, "--padding", pad)
                    assert out.strip() == str(conv_transpose_output_shape(n, k, s, lib_pad)[0])


def test_pytorch_convention(run):
    base = ["conv-transpose", "--input", "4", "--kernel", "5", "--stride", "2"]
    status, out, _ = run(*base, "--pytorch", "--padding", "1", "--output-padding", "1")
    assert (status, out) == (0, "10\n")  # (4-1)*2 - 2 + 4 + 1 + 1
    status, out, _ = run(*base, "--pytorch", "--padding", "2", "--explain")
    lines = out.splitlines()
    assert status == 0 and lines[0] == "7" and "padding=[(2, 2)]" in lines[-1]


def test_explain_shows_the_same_padding(run):
    status, out, _ = run("conv", "--input", "4", "--kernel", "4", "--padding", "SAME", "--explain")
    assert status == 0
    assert out.splitlines()[0] == "4"
    assert "(1, 2)" in out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["conv", "--input", "4", "--kernel", "x"], "--kernel"),
        (["conv", "--input", "0", "--kernel", "3"], "--input"),
        (["conv", "--input", "4", "--kernel", "3", "--stride", "-2"], "--stride"),
        (["conv", "--input", "4,4", "--kernel", "3,3,3"], "kernel_size"),
        (["conv", "--input", "4", "--kernel", "3", "--padding", "FULL"], "--padding"),
        (["conv", "--input", "4", "--kernel", "3", "--padding", "1:2:3"], "--padding"),
        (["conv", "--input", "4,4", "--kernel", "3", "--padding", "CAUSAL"], "CAUSAL"),
        (["conv", "--input", "4", "--kernel", "3", "--input-dilation", "2"], "input_dilation"),
        (["conv", "--input", "4", "--kernel", "3", "--padding", "1,2"], "LO:HI"),
        (["conv-transpose", "--input", "4,4,4", "--kernel", "3", "--padding", "1,1"], "LO:HI"),
        (["conv-transpose", "--input", "4", "--kernel", "3", "--padding", "REFLECT"], "--padding"),
        (["conv-transpose", "--input", "4", "--kernel", "3", "--output-padding", "1"], "--pytorch"),
        (
            [
                "conv-transpose",
                "--input",
                "4",
                "--kernel",
                "3",
                "--stride",
                "2",
                "--pytorch",
                "--output-padding",
                "2",
            ],
            "output_padding",
        ),
        (
            ["conv-transpose", "--input", "4", "--kernel", "3", "--pytorch", "--padding", "SAME"],
            "--padding",
        ),
        (["conv", "--input", "4"], "--kernel"),
        (["conv", "--input", "4", "--kernel", "3", "--bogus"], "--bogus"),
        (["pool", "--input", "4"], "pool"),
        ([], "KIND"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(run, argv, words):
    status, out, err = run(*argv)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("jaxsolve")
    assert words in err


def test_registered_in_the_real_command():
    parser = _main.build_parser()
    args = parser.parse_args(["shape", "conv", "--input", "4", "--kernel", "3"])
    assert callable(args.run)
