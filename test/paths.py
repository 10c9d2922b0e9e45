"""Where things are, for tests in any folder of test/: the repository root and test/ itself
(where the helper scripts the tests start as processes live)."""

from pathlib import Path

TEST_DIR = Path(__file__).resolve().parent
REPO = TEST_DIR.parent
