"""The READMEs' examples must run and do what their comments say.

``README.md`` is the repository's; ``README.pypi.md`` is the package's, the page a
package index shows (``readme`` in pyproject.toml), which must make sense without the
repository.
"""

import pathlib
import re

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["README.md", "README.pypi.md"])
def test_readme_example_recovers_translation(capsys, name):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / name).read_text(), flags=re.S)
    assert blocks, f"{name} has no python example"
    namespace: dict = {}
    exec(blocks[0], namespace)
    solution = namespace["solution"]
    assert bool(solution.valid.all())
    expected = torch.tensor([0.05, -0.02, 0.6])
    assert torch.allclose(solution.translation, expected.expand(8, 3), atol=1e-4)
    assert "tensor(" in capsys.readouterr().out


def test_package_readme_stands_without_the_repository():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^readme = "README.pypi.md"', pyproject, flags=re.M)
    text = (ROOT / "README.pypi.md").read_text()
    for repo_only in ("make ", ".venv", "examples/", "reference_model", "docs/", "benchmarks/"):
        assert repo_only not in text, repo_only
    # Links are absolute: an index page has no repository beside it.
    for target in re.findall(r"\]\(([^)]+)\)|<(\S+?)>", text):
        link = next(t for t in target if t)
        assert link.startswith("https://"), link
    assert "https://dgpgeom.readthedocs.io/en/latest/" in text
