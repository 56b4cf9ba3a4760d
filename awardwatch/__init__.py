"""awardwatch: the one installed package; ``flows``, ``schemas``, ``transforms`` and ``warehouse`` are its subpackages.

In the repository they sit at the top level, beside this folder; the wheel places them inside it
(``[tool.hatch.build.targets.wheel.sources]`` in pyproject.toml), so nothing generic lands in site-packages.
In a source checkout this package's path also covers the repository root, so ``awardwatch.flows`` is
``flows/`` there.
"""

import os as _os

_here = _os.path.dirname(_os.path.abspath(__file__))
if not _os.path.isdir(_os.path.join(_here, "flows")):  # a source checkout, not an installed wheel
    __path__.append(_os.path.dirname(_here))  # noqa: F821 (a package's own __path__)
