"""The README's example must run and do what its comments say."""

import pathlib
import re

import torch

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_recovers_translation(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(blocks[0], namespace)
    solution = namespace["solution"]
    assert bool(solution.valid.all())
    expected = torch.tensor([0.05, -0.02, 0.6])
    assert torch.allclose(solution.translation, expected.expand(8, 3), atol=1e-4)
    assert "tensor(" in capsys.readouterr().out
