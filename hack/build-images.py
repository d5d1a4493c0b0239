#!/usr/bin/env python3
"""Build tugboat's offline images as OCI archives and optionally load them into containerd.

    python hack/build-images.py --out DIR [--load SOCKET]

Images and their sources: see kubelet/images/builtin.py. Loading skips an image already
present with the same digest.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubelet.images.builtin import build_all
from kubelet.images.store import load_image


def main() -> int:
    parser = argparse.ArgumentParser(description="Build (and load) tugboat's offline images.")
    parser.add_argument("--out", required=True, type=Path, help="directory for the .tar archives")
    parser.add_argument("--load", metavar="SOCKET", help="containerd socket to import into")
    args = parser.parse_args()
    started = time.monotonic()
    for image in build_all(args.out):
        line = f"{image.name:34} {image.digest[:19]} {image.size / 1e6:4.1f} MB {image.path}"
        if args.load:
            line += "  loaded" if load_image(args.load, image.path) else "  present"
        print(line)
    print(f"done in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
