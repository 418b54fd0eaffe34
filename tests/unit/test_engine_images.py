"""The engine's image service over the image layer: load, names, lookup, remove, save."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dockyard.engine.errors import Conflict, NotFound
from dockyard.engine.events import EventBus
from dockyard.engine.images import ImageService

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


@pytest.fixture
def images(tmp_path: Path) -> ImageService:
    service = ImageService(tmp_path / "image", EventBus())
    with open(FIXTURES / "fixture-docker20-save.tar", "rb") as f:
        service.load(f)
    return service


def test_load_and_find(images: ImageService) -> None:
    target, image = images.find("dockyard-fixture:1.0")
    assert images.find("docker.io/library/dockyard-fixture:1.0")[0] == target
    assert images.find(str(image.id)[7:19])[0] == target
    summary = images.summary(target, image)
    assert summary["RepoTags"] == ["dockyard-fixture:1.0"]
    inspect = images.inspect(target, image)
    assert inspect["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert inspect["Config"]["Labels"]["org.example.fixture"] == "dockyard"
    assert len(inspect["RootFS"]["Layers"]) == 5
    assert images.history(image)[0]["Id"] == str(image.id)
    with pytest.raises(NotFound, match="No such image: nope"):
        images.find("nope")


def test_records_survive_a_restart(images: ImageService, tmp_path: Path) -> None:
    again = ImageService(tmp_path / "image", EventBus())
    assert again.find("dockyard-fixture:1.0")[1].id == images.find("dockyard-fixture:1.0")[1].id


def test_tag_untag_delete(images: ImageService) -> None:
    images.tag("dockyard-fixture:1.0", "example.com/team/app", "v2")
    target, image = images.find("example.com/team/app:v2")
    assert images.remove("example.com/team/app:v2", False, []) == [
        {"Untagged": "example.com/team/app:v2"}]
    with pytest.raises(Conflict, match="container cccccccccccc is using its referenced"):
        images.remove("dockyard-fixture:1.0", False, ["c" * 64])
    with pytest.raises(Conflict, match="being used by stopped container"):
        images.remove(str(image.id), False, ["c" * 64])
    removed = images.remove(str(image.id), True, [])
    assert removed[-1] == {"Deleted": str(image.id)}
    with pytest.raises(NotFound):
        images.find("dockyard-fixture:1.0")


def test_save_loads_back(images: ImageService, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    images.save(["dockyard-fixture:1.0"], buffer)
    other = ImageService(tmp_path / "other", EventBus())
    buffer.seek(0)
    loaded = other.load(buffer)
    assert str(loaded[0].id) == str(images.find("dockyard-fixture:1.0")[1].id)
