import shutil

import pytest


@pytest.fixture
def base_path(exported, tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(exported, copy)
    for path in copy.glob("models.config"):
        path.write_text(path.read_text().replace(str(exported.resolve()), str(copy.resolve())))
    return copy
