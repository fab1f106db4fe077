"""The README's Python examples marked "runs as written" do."""

import re
from pathlib import Path


def test_readme_python_example_runs(capsys):
    text = Path("README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if b.startswith("# runs as written")]
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert "(128, 128)" in capsys.readouterr().out
