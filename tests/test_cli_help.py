"""`--help` of the commands is quick and quiet: it loads neither torch nor transformers."""
from __future__ import annotations

import subprocess
import sys

import pytest

from geoai.settings import REPO_ROOT

HELP = """
import sys
from {module} import main
try:
    main(["--help"])
except SystemExit:
    pass
print("heavy:", sorted(m for m in ("torch", "transformers") if m in sys.modules))
"""


@pytest.mark.parametrize("module, expected", [
    ("geoai.bench.__main__", ["--quick", "insight, serve", "GEOAI_DATA_DIR/streetview-world-tiles"]),
    ("train.cli", ["--data DIR", "--out OUT", "--batch-size", "evaluate"]),
])
def test_help_loads_no_model_libraries_and_prints_no_warnings(module, expected):
    done = subprocess.run([sys.executable, "-c", HELP.format(module=module)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.rstrip().endswith("heavy: []")
    text = " ".join(done.stdout.split())
    for fragment in expected:
        assert fragment in text
