"""What every TorchServe worker loads: the handler and the framework-free core, never a web framework."""

from __future__ import annotations

import subprocess
import sys


def test_the_handler_imports_no_web_framework() -> None:
    probe = (
        "import sys, service.backends.torchserve.handler; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette', 'uvicorn'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "[]"
