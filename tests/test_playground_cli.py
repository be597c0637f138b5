"""``python -m bot playground`` without its optional dependencies: one line saying what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_without_gradio_it_says_what_to_install_in_one_line(tmp_path: Path) -> None:
    # A gradio that cannot be imported, first on the path: as if it were not installed.
    shadow = tmp_path / "shadow" / "gradio"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'gradio\'", name="gradio")\n')
    config = tmp_path / "config.toml"
    config.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "playground", "--config", str(config)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "shadow"), "OPENAI_API_KEY": "k"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "The playground needs gradio: pip install -r requirements-playground.txt\n"
