"""The README's Python examples run as written (in a temporary folder, on the CPU)."""

import re
from pathlib import Path

import pytest

from explainaug.registry import METHODS

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path, monkeypatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    before = set(METHODS)
    try:
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    finally:  # the README's own method leaves the registry as it found it
        for name in set(METHODS) - before:
            METHODS.unregister(name)
    assert (tmp_path / "runs" / "edda" / "checkpoint.pt").is_file()
    assert namespace["curves"]["similarity"]
    assert (tmp_path / "runs" / "mine" / "run.json").is_file()
    assert type(namespace["model"]).__name__ == "ContrastiveModel"
    assert (tmp_path / "runs" / "smooth" / "results.json").is_file()  # your own method, trained
