"""The train-deep function's program, run by the runtime's exec adapter (see
python/almanac_deep/function.py for what it does)."""
import os
import sys

sys.path.insert(0, os.environ.get("ALMANAC_DEEP_PATH") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

from almanac_deep.function import main  # noqa: E402

sys.exit(main())
