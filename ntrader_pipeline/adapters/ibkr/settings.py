"""Interactive Brokers settings, read from the environment (prefix ``NTRADER_IB_``) or ``.env``.

Only connection and pacing settings live here. The gateway's login (user name and password) is
read by the ``ib-gateway`` container from ``.env``; this package never reads, logs or reports it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORTS = {"paper": 4002, "live": 4001}  # IB Gateway; TWS uses 7497 (paper) and 7496 (live)
MARKET_DATA_TYPES = ("REALTIME", "FROZEN", "DELAYED", "DELAYED_FROZEN")


class IbkrSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NTRADER_IB_", env_file=".env", extra="ignore")

    host: str = Field("127.0.0.1", description="Host of IB Gateway or TWS.")
    port: int | None = Field(None, description="API port; default 4002 (paper) or 4001 (live).")
    client_id: int = Field(1, description="API client id; one connection per id at a time.")
    trading_mode: Literal["paper", "live"] = Field("paper", description="Which account the gateway logs into.")
    read_only: bool = Field(True, description="The gateway's API refuses orders (historical data needs none).")
    market_data_type: Literal["REALTIME", "FROZEN", "DELAYED", "DELAYED_FROZEN"] = Field(
        "REALTIME", description="Market data type the client asks for after connecting."
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for the gateway's handshake.")
    request_timeout: float = Field(60.0, gt=0, description="Seconds to wait for one historical request.")
    retries: int = Field(3, ge=0, description="Retries of a request after a transient error.")
    retry_backoff: float = Field(2.0, ge=0, description="Seconds before the first retry; doubled each time.")
    use_rth: bool = Field(True, description="Regular trading hours only; false adds pre- and post-market bars.")
    adjusted: bool = Field(False, description="Fetch IB's split- and dividend-adjusted ADJUSTED_LAST bars.")
    # IB's pacing limits for historical data; lower them only to test, never raise them.
    max_requests: int = Field(60, gt=0, description="Historical requests allowed per pacing window.")
    pacing_window: float = Field(600.0, gt=0, description="Seconds of the pacing window.")
    identical_interval: float = Field(15.0, ge=0, description="Seconds before an identical request may repeat.")
    per_contract_requests: int = Field(5, gt=0, description="Requests allowed per contract per burst window.")
    per_contract_window: float = Field(2.0, ge=0, description="Seconds of the per-contract burst window.")
    # What the scheduled Dagster ingestion fetches.
    universe: str = Field("", description="Comma-separated symbols the daily IBKR ingestion keeps up to date.")
    timeframe: str = Field("DAILY", description="Interval the daily IBKR ingestion fetches.")
    lookback_days: int = Field(30, gt=0, description="Calendar days back the daily IBKR ingestion looks for gaps.")

    @property
    def resolved_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.trading_mode]

    @property
    def symbols(self) -> list[str]:
        return [s.strip().upper() for s in self.universe.split(",") if s.strip()]


def get_ibkr_settings(**overrides) -> IbkrSettings:
    """Fresh settings from the environment; ``None`` overrides are ignored (unset CLI options)."""
    return IbkrSettings(**{k: v for k, v in overrides.items() if v is not None})
