"""Regenerate the Python code of the protobuf contracts: `buf generate` (buf.gen.yaml), then
move the generated imports under the `contracts` package.

protoc names generated modules after the proto paths (`argus/ingest/v1/...` becomes the
module `argus.ingest.v1`), which would collide with our `argus` CLI package. The generated
code therefore lives under `contracts/` and its imports are rewritten to
`contracts.argus...`. Output is deterministic, so CI can regenerate and `git diff
--exit-code` to catch drift.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
BUF = REPO / "node_modules" / ".bin" / "buf"
_IMPORT = re.compile(r"^(from|import) argus\.", re.MULTILINE)


def main() -> int:
    for stale in ROOT.glob("argus/**/*_pb2*.py*"):
        stale.unlink()
    if subprocess.run([str(BUF), "generate"], cwd=REPO, check=False).returncode != 0:
        print("buf generate failed (is `npm ci` done? `make proto` runs it)", file=sys.stderr)
        return 1
    for generated in ROOT.glob("argus/**/*_pb2*.py*"):
        text = generated.read_text()
        generated.write_text(_IMPORT.sub(r"\1 contracts.argus.", text))
    for folder in {ROOT / "argus", *(p.parent for p in ROOT.glob("argus/**/*.proto"))}:
        for package in (folder, *folder.relative_to(ROOT).parents):
            init = ROOT / package / "__init__.py" if not package.is_absolute() else package / "__init__.py"
            if package != Path(".") and not init.exists():
                init.write_text("")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
