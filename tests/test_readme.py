"""The README's Python examples run as they are written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_a_readme_example_runs(number: int, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(EXAMPLES[number], f"README example {number + 1}", "exec"), {})
    assert capsys.readouterr().out


def test_the_simulated_cluster_example_prints_the_committed_record_and_its_faults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (example,) = [code for code in EXAMPLES if "open_cluster" in code]
    exec(compile(example, "README cluster example", "exec"), {})
    out = capsys.readouterr().out
    assert "{'payments-0': [b'{\"amount\": 2500}']}" in out
    assert "Fault.drop_response(api='Produce', nth=1)" in out
    assert "Fault.client_crash(client='consumer-1', after='Fetch')" in out
