"""The TypeScript SDK (sdk/ts): its own tests (`npm test`), and its package as a user installs it.

The build is cached in directories git ignores: ``sdk/ts/node_modules`` (``npm ci`` from the committed
package-lock.json, redone only when the lock file changes) and ``sdk/ts/dist`` (tsc's incremental
output). ``ts_build`` and ``ts_consumer_project`` run once per session; the cross-language tests use them.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK_TS = ROOT / "sdk/ts"
TSC = SDK_TS / "node_modules/.bin/tsc"


def run(cmd: list[str], cwd: Path, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run a command; fail the test with its whole output when it fails."""
    done = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} (in {cwd}) exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


@contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """Serialise builds of one SDK across concurrent pytest processes."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def temp_dir(prefix: str) -> Path:
    """A temporary directory removed when the test session's process exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed (Node 20 and npm are needed for the TypeScript SDK)")
    return npm


@functools.cache
def ts_build() -> Path:
    """``npm ci`` when the lock file changed, then ``tsc`` (incremental); returns sdk/ts/dist."""
    with build_lock(SDK_TS / "dist"):
        lock_sha = hashlib.sha256((SDK_TS / "package-lock.json").read_bytes()).hexdigest()
        stamp = SDK_TS / "node_modules/.flk-lock-sha256"
        if not stamp.exists() or stamp.read_text() != lock_sha:
            run([_npm(), "ci", "--no-audit", "--no-fund"], SDK_TS)
            stamp.write_text(lock_sha)
        run([str(TSC), "-p", "tsconfig.json"], SDK_TS)
    return SDK_TS / "dist"


@functools.cache
def ts_tarball() -> Path:
    """``npm pack`` of the SDK into a temporary directory."""
    ts_build()
    out = temp_dir("flk-ts-pack-")
    # --ignore-scripts: ts_build() has compiled already; the prepack script would run tsc again.
    done = run([_npm(), "pack", "--json", "--ignore-scripts", "--pack-destination", str(out)], SDK_TS)
    filename = json.loads(done.stdout)[0]["filename"]
    return out / filename


DOC = ROOT / "docs/sdk-typescript.md"


def doc_example(doc: Path, fence: str) -> str:
    """The first code block of the given language under '## Example' in a doc."""
    section = doc.read_text("utf-8").split("## Example", 1)[1]
    match = re.search(rf"```{fence}\n(.*?)```", section, re.S)
    assert match, f"no ```{fence} block under ## Example in {doc}"
    return match.group(1)


def _check_import_source() -> str:
    vectors = json.loads((ROOT / "sdk/testdata/golden/vectors.json").read_text("utf-8"))
    return (
        'import { computePcsId, FractalLBAClient, HmacSigner, payloadDigest, type PCS } from "flk-sdk";\n'
        f"const input = {json.dumps(vectors['cases'][0]['input'])};\n"
        "const id: string = computePcsId(input.merkle_root, input.epoch, input.shard_id);\n"
        f"const signer = new HmacSigner({json.dumps(vectors['hmac_secret_utf8'])});\n"
        "const sig: string = signer.sign(payloadDigest(input));\n"
        'const client = new FractalLBAClient({ baseURL: "http://127.0.0.1:9", tenantID: "t", '
        'signingKey: "k", signingAlg: "hmac" });\n'
        "const typed: Pick<PCS, 'epoch'> = { epoch: 1 };\n"
        "console.log(JSON.stringify({ id, sig, base: client.baseURL, epoch: typed.epoch }));\n"
    )


@functools.cache
def ts_consumer_project() -> Path:
    """A temporary npm project with the packed SDK installed, as a user would install it, holding two
    programs compiled (strict) against the package's declarations: ``out/check_import.js`` and
    ``out/readme_example.js`` (the example of docs/sdk-typescript.md, as written there)."""
    project = temp_dir("flk-ts-consumer-")
    (project / "package.json").write_text(
        json.dumps({"name": "consumer", "version": "1.0.0", "private": True})
    )
    run([_npm(), "install", "--offline", "--no-audit", "--no-fund", str(ts_tarball())], project)
    (project / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "strict": True,
                    "target": "ES2022",
                    "module": "node16",
                    "moduleResolution": "node16",
                    "types": ["node"],
                    "typeRoots": [str(SDK_TS / "node_modules/@types")],
                    "outDir": "out",
                    # The .d.ts files are checked where tsc wrote them; here only their use is.
                    "skipLibCheck": True,
                },
                "include": ["*.ts"],
            }
        )
    )
    (project / "check_import.ts").write_text(_check_import_source())
    (project / "readme_example.ts").write_text(doc_example(DOC, "ts"))
    run([str(TSC), "-p", "tsconfig.json"], project)
    return project


def test_npm_test_passes_with_every_golden_vector():
    ts_build()
    done = run([_npm(), "test"], SDK_TS)
    output = done.stdout + done.stderr
    vectors = json.loads((ROOT / "sdk/testdata/golden/vectors.json").read_text("utf-8"))["cases"]
    assert f"golden vectors passed: {len(vectors)}/{len(vectors)}" in output, output
    assert "# fail 0" in output, output


def test_npm_pack_holds_the_type_declarations_and_no_tests():
    with tarfile.open(ts_tarball()) as tar:
        names = set(tar.getnames())
    for module in ("index", "client", "pcs", "canonical", "merkle", "signing", "errors"):
        assert f"package/dist/src/{module}.js" in names
        assert f"package/dist/src/{module}.d.ts" in names
    assert "package/package.json" in names
    assert not [
        n for n in names if "/test/" in n or "/tools/" in n or (n.endswith(".ts") and not n.endswith(".d.ts"))
    ]


def test_the_packed_sdk_installs_imports_and_type_checks_in_a_fresh_project():
    project = ts_consumer_project()
    case = json.loads((ROOT / "sdk/testdata/golden/vectors.json").read_text("utf-8"))["cases"][0]
    done = run(["node", "out/check_import.js"], project)
    assert json.loads(done.stdout) == {
        "id": case["input"]["pcs_id"],
        "sig": case["sig"],
        "base": "http://127.0.0.1:9",
        "epoch": 1,
    }
    # The same package also loads with require() from plain JavaScript.
    done = run(["node", "-e", "console.log(typeof require('flk-sdk').FractalLBAClient)"], project)
    assert done.stdout.strip() == "function"
