#!/usr/bin/env python
"""Download a public dataset archive (resumable, SHA-256 verified) and extract it safely.

    python tools/download.py spondylolisthesis [--to DIR] [--url URL] [--extract-to FOLDER] [--no-extract]
            [--timeout S] [--no-progress]
    python tools/download.py buu-lspine      (no public download: says how to get it)

Exit status: 0 done, 1 the download failed (the manual steps are printed), 2 bad arguments,
BUU-LSPINE, or an archive refused.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vertkp.data.raw.download import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
