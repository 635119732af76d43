"""Shared fixtures. ``fixture_data`` is a data directory in the official layouts, written by us (tests/fixtures/data);
MMLU-Pro's parquet is built here from tests/fixtures/mmlu_pro_rows.json so no binary file is committed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
# The real benchmark files, beside the project as in CI (../shared/data), or wherever MEDRLVR_DATA_DIR says.
REAL_DATA = Path(os.environ.get("MEDRLVR_REAL_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def write_mmlu_pro(root: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = json.loads((FIXTURES / "mmlu_pro_rows.json").read_text())
    (root / "mmlu_pro" / "data").mkdir(parents=True, exist_ok=True)
    for split, items in rows.items():
        pq.write_table(pa.Table.from_pylist(items), root / "mmlu_pro" / "data" / f"{split}-00000-of-00001.parquet")


@pytest.fixture(scope="session")
def fixture_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    shutil.copytree(FIXTURES / "data", root, dirs_exist_ok=True)
    write_mmlu_pro(root)
    return root


@pytest.fixture
def data_copy(fixture_data, tmp_path) -> Path:
    """A private copy to corrupt."""
    shutil.copytree(fixture_data, tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "README.md").exists():
        pytest.skip(f"real benchmark data not found at {REAL_DATA} (set MEDRLVR_REAL_DATA_DIR)")
    return REAL_DATA
