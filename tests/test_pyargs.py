"""From another project, once this one is installed: ``pytest --pyargs conformance
--conformance-impl …`` runs the same suite (the test modules ship inside the package; the plugin
comes by entry point)."""

import subprocess
import sys
from pathlib import Path


def _pytest(cwd: Path, impl: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "conformance",
                           "--conformance-impl", impl,
                           "-k", "test_suite and tanh", "-p", "no:cacheprovider", "-q"],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def test_pyargs_from_another_directory(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "someone-elses-engine"\n')
    engine = tmp_path / "engine.py"  # an implementation of theirs: refimpl with tanh' planted wrong
    engine.write_text((Path(__file__).parent / "fixtures" / "planted_adapter.py").read_text())
    good, bad = _pytest(tmp_path, "refimpl"), _pytest(tmp_path, str(engine))
    assert good.returncode == 0, good.stdout[-2000:]
    assert " passed" in good.stdout.splitlines()[-1]
    assert bad.returncode == 1, bad.stdout[-2000:]
    assert "suite 'op tanh' (seed " in bad.stdout and "planted-tanh does not conform" in bad.stdout


def test_the_nightly_profile_holds_every_entry_against_the_truth(tmp_path):
    """--conformance-truth auto means always in the nightly profile, whether it is named with
    --conformance-profile or (as before) --hypothesis-profile."""
    header = {}
    for option in ("--conformance-profile=ci", "--conformance-profile=nightly", "--hypothesis-profile=nightly"):
        out = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "conformance", "--co",
                              "-p", "no:cacheprovider", option],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
        header[option] = next(line for line in out.stdout.splitlines() if line.startswith("conformance: impl="))
    assert header["--conformance-profile=ci"].endswith("truth=arbitrate"), header
    assert header["--conformance-profile=nightly"].endswith("truth=always"), header
    assert header["--hypothesis-profile=nightly"].endswith("truth=always"), header
