"""Prints a hash of pyproject.toml's dependency lists (runtime and extras), the part
requirements.lock is made from; scripts/bootstrap compares it with the lock's header."""

import hashlib
import json
import tomllib
from pathlib import Path

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
deps = {"dependencies": project.get("dependencies", []),
        "optional": project.get("optional-dependencies", {})}  # fmt: skip
print(hashlib.sha256(json.dumps(deps, sort_keys=True).encode()).hexdigest())
