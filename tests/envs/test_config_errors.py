"""Bad configuration fails at construction, with a message that names the problem."""

from __future__ import annotations

import numpy as np
import pytest

from envs import CostConfig, EnvConfig, FeeSchedule, SchemeSpec, TradingEnv
from features.data.schema import DataError
from features.panel import FeaturePanel
from tests.envs.helpers import bar_panel, random_panel
from tests.envs.scenario import SINGLE_BARS

BTC = "binance:BTC/USDT"


def panel() -> FeaturePanel:
    return bar_panel({BTC: SINGLE_BARS})


def test_window_larger_than_the_data() -> None:
    with pytest.raises(DataError, match=r"window of 8 bars is larger than the data: the panel has 8 bars"):
        TradingEnv(panel(), EnvConfig(window=8, mode="eval"))
    with pytest.raises(DataError, match=r"training episodes of 720 steps with a window of 32 need at least 752"):
        TradingEnv(random_panel(np.random.default_rng(0), 500), EnvConfig())


def test_unknown_instrument_lists_the_known_ones() -> None:
    with pytest.raises(DataError, match=r"unknown instrument\(s\) \['kraken:BTC/USD'\]: the panel has binance:BTC"):
        TradingEnv(panel(), EnvConfig(window=2, mode="eval", instruments=("kraken:BTC/USD",)))


def test_nan_in_features_or_prices() -> None:
    good = panel()
    features = good.features.copy()
    features[3, 0, 1] = np.nan
    with pytest.raises(DataError, match="feature 'bar_index' of binance:BTC/USDT@1h is not finite at row 3"):
        FeaturePanel(good.timestamps, good.keys, good.feature_names, features, good.ohlcv)
    ohlcv = good.ohlcv.copy()
    ohlcv[4, 0, 3] = np.nan
    bad = FeaturePanel(good.timestamps, good.keys, good.feature_names, good.features, ohlcv)
    with pytest.raises(DataError, match=r"bar close of binance:BTC/USDT@1h is nan at row 4"):
        TradingEnv(bad, EnvConfig(window=2, mode="eval"))
    ohlcv = good.ohlcv.copy()
    ohlcv[2, 0, 0] = 0.0
    with pytest.raises(DataError, match=r"bar open of binance:BTC/USDT@1h is 0\.0 at row 2"):
        TradingEnv(FeaturePanel(good.timestamps, good.keys, good.feature_names, good.features, ohlcv),
                   EnvConfig(window=2, mode="eval"))


def test_weights_that_do_not_sum() -> None:
    with pytest.raises(DataError, match=r"sum to 1.2; they must sum to 1"):
        TradingEnv(panel(), EnvConfig(window=2, mode="eval",
                                      action=SchemeSpec("deltas", {"base_weights": [0.6, 0.6]})))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: EnvConfig(window=0), "window must be an int >= 1"),
        (lambda: EnvConfig(mode="live"),  # type: ignore[arg-type]
         "mode must be 'train' or 'eval'"),
        (lambda: EnvConfig(initial_cash=-1.0), "initial_cash must be > 0"),
        (lambda: EnvConfig(max_leverage=0.5), "max_leverage must be >= 1"),
        (lambda: CostConfig(default_fees=FeeSchedule(taker=0.1)), r"taker fee of default_fees is 0.1: expected"),
        (lambda: CostConfig(fees={"Binance": FeeSchedule(maker=-0.001)}), "maker fee of binance is -0.001"),
        (lambda: CostConfig(slippage_bps=-1.0), "slippage_bps must be >= 0"),
        (lambda: CostConfig(impact_cap=1.5), "impact_cap must be below 1"),
        (lambda: EnvConfig.from_dict({"windw": 32}), r"unknown keys \['windw'\]"),
        (lambda: EnvConfig.from_dict({"costs": {"fee": 0.1}}), r"CostConfig: unknown keys \['fee'\]"),
        (lambda: SchemeSpec.of({"name": "weights", "parms": {}}), r"unknown keys \['parms'\]"),
    ],
)
def test_bad_values_in_the_config(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=message):
        make()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (EnvConfig(window=2, mode="eval", action=SchemeSpec("market_maker")),
         "unknown action scheme 'market_maker': choose"),
        (EnvConfig(window=2, mode="eval", reward=SchemeSpec("profit")), "unknown reward scheme 'profit': choose from"),
        (EnvConfig(window=2, mode="eval", sizing=SchemeSpec("martingale")), "unknown sizing rule 'martingale': choose"),
        (EnvConfig(window=2, mode="eval", action=SchemeSpec("sized", {"fractions": [0.5, 2.0]})),
         r"fractions must be in \(0, 1\]"),
        (EnvConfig(window=2, mode="eval", action=SchemeSpec("limit", {"ttl": 3})),
         "action scheme 'limit': bad parameters"),
        (EnvConfig(window=2, mode="eval", reward=SchemeSpec("dsr", {"eta": 2.0})), "need 0 < eta < 1"),
        (EnvConfig(window=2, mode="eval", augmentations=(SchemeSpec("mirror"),)), "unknown augmentation 'mirror'"),
    ],
)
def test_bad_scheme_choices(config: EnvConfig, message: str) -> None:
    with pytest.raises(DataError, match=message):
        TradingEnv(panel(), config)


def test_mixed_bar_lengths_and_bad_episode_starts() -> None:
    hourly = bar_panel({BTC: SINGLE_BARS})
    daily = bar_panel({"bitstamp:BTC/USD": SINGLE_BARS}, timeframe="1d")
    mixed = FeaturePanel(hourly.timestamps, (*hourly.keys, *daily.keys), hourly.feature_names,
                         np.concatenate([hourly.features, daily.features], 1),
                         np.concatenate([hourly.ohlcv, daily.ohlcv], 1))
    with pytest.raises(DataError, match="instruments have different bar lengths"):
        TradingEnv(mixed, EnvConfig(window=2, mode="eval"))
    env = TradingEnv(panel(), EnvConfig(window=2, episode_length=3, mode="train"))
    with pytest.raises(DataError, match=r"episode start 0 is outside \[1, 4\]"):
        env.reset(options={"start": 0})
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


def test_actions_of_the_wrong_shape_or_nan_are_refused() -> None:
    env = TradingEnv(panel(), EnvConfig(window=2, mode="eval", action=SchemeSpec("weights")))
    env.reset(seed=0)
    with pytest.raises(DataError, match="expects 2 numbers"):
        env.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(DataError, match="action holds NaN"):
        env.step(np.array([np.nan, 0.0], dtype=np.float32))
