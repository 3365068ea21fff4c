#!/usr/bin/env python3
"""The node's container runtime: runc, with a negative oom_score_adj clamped to 0.

dockershim asks for -998 for its pod sandboxes, and root here lacks CAP_SYS_RESOURCE, which lowering the
score needs: runc then fails with "can't get final child's PID from pipe: EOF". On `create` and `run` this
rewrites the bundle's config.json, then runs the real runc with the same arguments.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

RUNC = "/usr/sbin/runc"


def bundle(arguments: list[str]) -> Path | None:
    if "create" not in arguments and "run" not in arguments:
        return None
    for flag in ("--bundle", "-b"):
        if flag in arguments:
            return Path(arguments[arguments.index(flag) + 1])
    return Path.cwd()


def clamp(config_path: Path) -> None:
    config = json.loads(config_path.read_text())
    process = config.get("process", {})
    if process.get("oomScoreAdj", 0) < 0:
        process["oomScoreAdj"] = 0
        config_path.write_text(json.dumps(config))


def main() -> None:
    arguments = sys.argv[1:]
    found = bundle(arguments)
    if found is not None and (found / "config.json").is_file():
        clamp(found / "config.json")
    os.execv(RUNC, [RUNC, *arguments])


if __name__ == "__main__":
    main()
