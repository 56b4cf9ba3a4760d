"""Where tests find the project and the shared reference material (which may be absent: tests then skip)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout
SHARED = ROOT.parent / "shared"  # ../shared: reference layouts and real payloads, not part of the project
