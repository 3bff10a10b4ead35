"""Where the repository is, for tests that read its files (docs, manifests, protos)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
