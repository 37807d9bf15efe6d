"""The Go SDK (sdk/go): ``go test ./...``, gofmt and go vet, and its command-line programs.

Go is Debian's golang-go (deployments/local/ensure-services.sh installs it). Builds are cached by Go's
own build cache; the binaries the cross-language tests run go to ``sdk/go/bin`` (ignored by git).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.sdk.test_ts_sdk import build_lock, run

ROOT = Path(__file__).resolve().parents[2]
SDK_GO = ROOT / "sdk/go"


def go() -> str:
    """The go command (fails the test when Go is missing: `make services` installs it)."""
    found = shutil.which("go") or ("/usr/lib/go/bin/go" if os.access("/usr/lib/go/bin/go", os.X_OK) else None)
    if found is None:
        pytest.fail("Go is not installed: deployments/local/ensure-services.sh installs golang-go")
    return found


def go_env() -> dict[str, str]:
    """Standard library only: nothing may be downloaded."""
    return {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}


@functools.cache
def go_binary(name: str) -> Path:
    """Build ``sdk/go/cmd/<name>`` into ``sdk/go/bin/<name>`` once per session."""
    out = SDK_GO / "bin" / name
    with build_lock(SDK_GO / "bin"):
        run([go(), "build", "-o", str(out), f"./cmd/{name}"], SDK_GO, env=go_env())
    return out


def test_go_test_passes_with_every_golden_vector():
    done = run([go(), "test", "-count=1", "-v", "./..."], SDK_GO, env=go_env())
    vectors = json.loads((ROOT / "sdk/testdata/golden/vectors.json").read_text("utf-8"))["cases"]
    assert f"golden vectors passed: {len(vectors)}/{len(vectors)}" in done.stdout, done.stdout


def test_gofmt_and_go_vet_are_clean():
    done = run(["gofmt", "-l", "."] if shutil.which("gofmt") else [go(), "fmt", "-n"], SDK_GO)
    assert done.stdout.strip() == "", f"gofmt would change:\n{done.stdout}"
    run([go(), "vet", "./..."], SDK_GO, env=go_env())


def test_the_module_uses_only_the_standard_library():
    gomod = (SDK_GO / "go.mod").read_text()
    assert "require" not in gomod
    done = run(
        [go(), "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./..."],
        SDK_GO,
        env=go_env(),
    )
    assert set(done.stdout.split()) <= {"flk", "flk/cmd/flk-pcs-jsonl", "flk/cmd/flk-e2e"}
