"""Where the repository's data folders are (nats/, migrations/, templates/).

jetpost is installed editable from its checkout (README), so these live beside
the packages; every one can be overridden through Settings.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NATS_DIR = ROOT / "nats"
MIGRATIONS_DIR = ROOT / "migrations"
TEMPLATES_DIR = ROOT / "templates"
