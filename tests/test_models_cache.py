"""`edgekd models` remembers MAC counts (a counted forward of a big teacher takes seconds) and says what it
is doing while it counts."""
from __future__ import annotations

import json

import pytest

from edgekd.cli import main
from edgekd.models import create_model
from edgekd.models import complexity
from edgekd.models.complexity import cached_macs, count_macs, mac_cache_path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _no_counting(*args, **kwargs):
    raise AssertionError("counted again instead of using the cache")


def test_a_count_is_remembered_per_model_and_size(cache, monkeypatch):
    model = create_model("unet_tiny", num_classes=11).eval()
    misses = []
    first = cached_macs("unet_tiny", model, (64, 96), on_miss=misses.append)
    assert first == count_macs(model, (64, 96)) and misses == ["unet_tiny"]
    assert mac_cache_path().parent == cache and list(json.loads(mac_cache_path().read_text()).values()) == [first]
    monkeypatch.setattr(complexity, "count_macs", _no_counting)
    assert cached_macs("unet_tiny", model, (64, 96), on_miss=misses.append) == first and misses == ["unet_tiny"]
    with pytest.raises(AssertionError, match="counted again"):  # another size is another count
        cached_macs("unet_tiny", model, (32, 48))


def test_a_changed_architecture_is_counted_again(cache):
    small = create_model("unet_tiny", num_classes=11).eval()
    other = create_model("unet_tiny", num_classes=5).eval()  # same name, other head: other tensors
    assert cached_macs("unet_tiny", small, (64, 96)) == count_macs(small, (64, 96))
    assert cached_macs("unet_tiny", other, (64, 96)) == count_macs(other, (64, 96))
    assert len(json.loads(mac_cache_path().read_text())) == 2


def test_a_broken_cache_file_is_recounted_not_an_error(cache):
    cache.mkdir(parents=True)
    mac_cache_path().write_text("{not json")
    model = create_model("unet_tiny", num_classes=11).eval()
    assert cached_macs("unet_tiny", model, (64, 96)) == count_macs(model, (64, 96))
    assert len(json.loads(mac_cache_path().read_text())) == 1


def test_models_cli_shows_progress_on_a_cold_cache_only(cache, capsys):
    assert main(["models", "--role", "student", "--input-size", "64x96", "--json"]) == 0
    cold = capsys.readouterr()
    rows = json.loads(cold.out)
    lines = cold.err.strip().splitlines()
    assert len(lines) == len(rows) and lines[0].startswith(f"counting MACs of {rows[0]['name']} at 64x96 (1/{len(rows)}")
    assert str(mac_cache_path()) in lines[0]
    assert main(["models", "--role", "student", "--input-size", "64x96", "--json"]) == 0
    warm = capsys.readouterr()
    assert warm.err == "" and json.loads(warm.out) == rows
