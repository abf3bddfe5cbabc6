"""``jaxsolve study mod``: an unusable --output folder fails before any training."""

import pytest

from jaxsolve.cli import main


@pytest.mark.parametrize(
    ("output", "words"),
    [
        ("report.md", ["exists and is not a folder"]),
        ("report.md/sub", ["cannot create a folder inside the file"]),
        ("report.md/a/b", ["cannot create a folder inside the file"]),
    ],
    ids=["a-file", "inside-a-file", "deep-inside-a-file"],
)
def test_unusable_output_folder_is_one_line_exit_2(tmp_path, capsys, output, words):
    (tmp_path / "report.md").write_text("not a folder")
    argv = ["study", "mod", "--quick", "--no-progress", "--output", str(tmp_path / output)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxsolve study: error: --output")
    for word in words:
        assert word in lines[0]
