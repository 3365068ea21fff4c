"""A doc's Python example, run against a real server: what it prints must be what the doc shows it printing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def check_python_example(section: str, documented_url: str, url: str) -> None:
    """Run the one ```python block of ``section`` with ``documented_url`` replaced by ``url``, and compare what it
    prints with the section's one ```text block."""
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    (printed,) = re.findall(r"```text\n(.*?)```", section, re.DOTALL)
    script = code.replace(documented_url, url)
    assert script != code, f"the example no longer names the server it talks to ({documented_url})"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed
