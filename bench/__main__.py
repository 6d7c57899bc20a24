"""``python -m bench [NAME ...]`` runs the named benchmarks (default: all ``bench/*_bench.py``)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path


def available() -> list[str]:
    return sorted(p.stem[: -len("_bench")] for p in Path(__file__).parent.glob("*_bench.py"))


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or available()
    status = 0
    for name in names:
        if name not in available():
            print(f"no benchmark {name!r}; available: {', '.join(available())}", file=sys.stderr)
            return 2
        print(f"=== bench {name}", flush=True)
        module = importlib.import_module(f"bench.{name}_bench")
        status = max(status, int(module.main([a for a in argv if a.startswith("-")]) or 0))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
