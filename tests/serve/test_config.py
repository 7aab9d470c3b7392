"""Configuration files of alerts and execution, and the Telegram environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.data.schema import DataError
from serve.execution.config import ExecutionConfig
from serve.monitoring.config import AlertsConfig
from serve.notify.config import TelegramConfig


def test_shipped_files_load() -> None:
    alerts = AlertsConfig.load("default")
    assert alerts.telegram.enabled is None and alerts.telegram.chat_ids == ()
    assert alerts.performance.min_sharpe == 1.0 and alerts.metrics.address == "127.0.0.1"
    paper = ExecutionConfig.load("paper")
    assert paper.journal.url == "sqlite:///runs/journal.db"
    assert (paper.risk.max_order_notional, paper.risk.on_daily_loss) == (15000.0, "flatten")
    assert paper.mode == "paper" and paper.serve_url.startswith("http://127.0.0.1")


def test_unknown_keys_and_wrong_types_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"alerts\.telegram: unknown field\(s\) tokn"):
        AlertsConfig.from_dict({"telegram": {"tokn": "x"}})
    with pytest.raises(DataError, match=r"execution\.risk\.max_order_notional: expected float, got 'lots'"):
        ExecutionConfig.from_dict({"risk": {"max_order_notional": "lots"}})
    with pytest.raises(DataError, match=r"alerts\.drift\.returns\.method: expected one of"):
        AlertsConfig.from_dict({"drift": {"returns": {"method": "magic"}}})
    with pytest.raises(DataError, match="no alerts config 'missing'"):
        AlertsConfig.load("missing")
    path = tmp_path / "mine.yaml"
    path.write_text("risk:\n  position_limits: {'binance:ETH/USDT': 250}\n")
    assert ExecutionConfig.load(path).risk.position_limit("binance:ETH/USDT") == 250.0


def test_telegram_is_enabled_by_the_token_variable_only() -> None:
    config = TelegramConfig()
    assert not config.is_enabled({})
    assert config.is_enabled({"MFT_TELEGRAM_TOKEN": "123:abc"})
    assert config.token({"MFT_TELEGRAM_TOKEN": "  123:abc "}) == "123:abc"
    assert not TelegramConfig(enabled=False).is_enabled({"MFT_TELEGRAM_TOKEN": "123:abc"})
    with pytest.raises(DataError, match="MFT_TELEGRAM_TOKEN is not set"):
        TelegramConfig(enabled=True).is_enabled({})


def test_chat_ids_merge_config_and_environment() -> None:
    config = TelegramConfig(chat_ids=(42,))
    assert config.all_chat_ids({"MFT_TELEGRAM_CHAT_IDS": "7, 42,-100123"}) == (42, 7, -100123)
    with pytest.raises(DataError, match="chat id 'abc' is not an integer"):
        config.all_chat_ids({"MFT_TELEGRAM_CHAT_IDS": "abc"})


def test_a_sweep_export_becomes_sharpe_weighted_members(tmp_path: Path) -> None:
    from serve.config import members_from_sweep_export

    spec = tmp_path / "ensemble.yaml"
    spec.write_text("rule: sharpe_weighted\nmembers:\n"
                    "  - {name: top1, checkpoint: /runs/a, weight: 1.5, algo: ppo, model: mlp}\n"
                    "  - {name: top2, checkpoint: /runs/b, weight: -0.3, algo: dqn, model: mlp}\n")
    members = members_from_sweep_export(spec)
    assert [(m.source, m.name, m.weight) for m in members] == [("/runs/a", "top1", 1.5), ("/runs/b", "top2", 0.0)]
    spec.write_text("members:\n  - {checkpoint: /runs/a, weight: -1}\n  - {checkpoint: /runs/b, weight: -2}\n")
    assert [m.weight for m in members_from_sweep_export(spec)] == [1.0, 1.0]
    spec.write_text("members:\n  - {name: x}\n")
    with pytest.raises(DataError, match="no 'checkpoint'"):
        members_from_sweep_export(spec)
