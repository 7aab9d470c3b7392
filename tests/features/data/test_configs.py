"""Every data config in configs/data composes with Hydra and names a loadable dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from features.data.config import DataConfig
from features.data.registry import BUNDLED_DATASETS
from features.data.schema import DataError

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


@pytest.mark.parametrize("choice", sorted(p.stem for p in (CONFIGS / "data").glob("*.yaml")))
def test_data_choice_composes(choice: str) -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        cfg = compose(config_name="config", overrides=[f"data={choice}"])
    data = DataConfig.from_dict(OmegaConf.to_container(cfg.data))  # type: ignore[arg-type]
    assert data.name == choice and data.name in BUNDLED_DATASETS


def test_every_bundled_dataset_has_a_config() -> None:
    assert {p.stem for p in (CONFIGS / "data").glob("*.yaml")} == set(BUNDLED_DATASETS)


def test_unknown_field_is_named() -> None:
    with pytest.raises(DataError, match=r"unknown field.*gap_polcy"):
        DataConfig.from_dict({"name": "x", "gap_polcy": "drop"})
