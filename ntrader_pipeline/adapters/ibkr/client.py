"""A bounded, closeable connection to IB Gateway/TWS through NautilusTrader's IB client.

NautilusTrader 1.231's ``HistoricInteractiveBrokersClient`` retries a connection forever, has no
disconnect, and turns an IB error or a dropped socket into ``[]`` after the request's full
timeout, which looks exactly like "no bars". ``IbkrSession`` assembles the same NautilusTrader
parts that class does (client, instrument provider, data client) with three differences:

- connecting is bounded: a plain TCP probe first (a closed port fails at once), then the
  handshake within ``connect_timeout``;
- a request that IB answers with an error, that times out, or whose socket drops raises an
  ``IbkrError`` saying which, at once, instead of returning ``[]``;
- ``answers(timeout)`` asks the gateway for its time (``reqCurrentTime``), which it answers at once
  whenever it is alive, so a request that timed out tells a slow request from a silent gateway;
- ``close()`` stops every task and socket the client started, so nothing outlives the session.

It is asyncio code: run it inside ``asyncio.run`` (see ``fetch.py``), whose shutdown also joins
the worker threads the client reads the socket on.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from dataclasses import dataclass

import pandas as pd
from ibapi.common import MarketDataTypeEnum
from nautilus_trader.adapters.interactive_brokers.client import InteractiveBrokersClient
from nautilus_trader.adapters.interactive_brokers.common import IBContract
from nautilus_trader.adapters.interactive_brokers.config import (
    InteractiveBrokersDataClientConfig,
    InteractiveBrokersInstrumentProviderConfig,
)
from nautilus_trader.adapters.interactive_brokers.data import InteractiveBrokersDataClient
from nautilus_trader.adapters.interactive_brokers.parsing.data import bar_spec_to_bar_size
from nautilus_trader.adapters.interactive_brokers.providers import InteractiveBrokersInstrumentProvider
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.model.data import Bar, BarSpecification, BarType
from nautilus_trader.model.enums import AggregationSource
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.model.instruments import Instrument

from ntrader_pipeline.adapters.ibkr.settings import IbkrSettings

TROUBLESHOOTING = (
    "Is IB Gateway or TWS running and logged in? "
    "Is the port right (IB Gateway 4002 paper / 4001 live, TWS 7497 paper / 7496 live)? "
    "Is the API enabled (Configure > Settings > API > 'Enable ActiveX and Socket Clients') "
    "and 127.0.0.1 a trusted IP? Is another program already using this client id?"
)

# IB error codes worth retrying: pacing violation / farm trouble / lost connectivity.
TRANSIENT_CODES = {162, 165, 366, 502, 504, 1100, 2103, 2105, 10182}


class IbkrError(RuntimeError):
    """Anything that stopped a conversation with the gateway; the message is for the user."""

    transient = False


class IbkrConnectionError(IbkrError):
    """No usable connection: nothing listening, no handshake, or no answer in time."""


class IbkrRequestError(IbkrError):
    """IB answered a request with an error code."""

    def __init__(self, code: int, message: str):
        self.code = code
        self.message = message
        super().__init__(f"IB error {code}: {message}")
        self.transient = code in TRANSIENT_CODES and not self.no_data

    @property
    def no_data(self) -> bool:
        """162 also means "HMDS query returned no data": an empty answer, not a failure."""
        return self.code == 162 and "returned no data" in self.message.lower()


class IbkrGatewaySilent(IbkrConnectionError):
    """The gateway stopped answering anything on an open connection (hung, restarting, logged out)."""


class IbkrRequestTimeout(IbkrError):
    transient = True


class IbkrDisconnected(IbkrError):
    transient = True


@dataclass(frozen=True)
class RejectedBar:
    """A bar NautilusTrader dropped as invalid (e.g. open above high); kept so we can report it."""

    bar_type: str
    date: str  # IB's bar date: epoch seconds of the open, or YYYYMMDD for daily bars
    open: float
    high: float
    low: float
    close: float


class _FailFastClient(InteractiveBrokersClient):
    """NautilusTrader's IB client, but a request ends with an exception as soon as it fails.

    The overrides are hooks of NautilusTrader 1.231 (pinned in pyproject.toml); the fake-gateway
    tests exercise each of them, so an upgrade that changes one fails there, not in production.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._start_task: asyncio.Task | None = None
        self.rejected_bars: list[RejectedBar] = []
        # NautilusTrader's wrapper only logs head time stamps and the server time; route them to
        # whoever waits for them.
        self._eclient.wrapper.headTimestamp = self._on_head_timestamp
        self._eclient.wrapper.currentTime = self._on_current_time
        self._time_waiters: list[asyncio.Future] = []

    def _on_current_time(self, time: int) -> None:
        async def finish() -> None:
            waiters, self._time_waiters = self._time_waiters, []
            for future in waiters:
                if not future.done():
                    future.set_result(time)

        self.submit_to_msg_handler_queue(finish)

    async def answers(self, timeout: float) -> bool:
        """Whether the gateway answers ``reqCurrentTime`` within ``timeout`` seconds."""
        future = asyncio.get_running_loop().create_future()
        self._time_waiters.append(future)
        self._eclient.reqCurrentTime()
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        return True

    def _on_head_timestamp(self, reqId: int, headTimestamp: str) -> None:  # noqa: N803 - ibapi's names
        async def finish() -> None:
            if (request := self._requests.get(req_id=reqId)) is not None:
                request.result.append(headTimestamp)
                self._end_request(reqId)

        self.submit_to_msg_handler_queue(finish)

    async def request(self, name: tuple, send, cancel, timeout: float):
        """Send one request (``send(req_id)``) and wait for its answer, or its error."""
        req_id = self._next_req_id()
        request = self._requests.add(
            req_id=req_id, name=name, handle=functools.partial(send, req_id), cancel=functools.partial(cancel, req_id)
        )
        if request is None:  # NautilusTrader's registry hands back None only when nothing was stored
            raise IbkrError(f"request {name} could not be registered with id {req_id}")
        request.handle()
        return await self._await_request(request, timeout)

    def _validate_bar_prices(self, bar_type, open_price, high_price, low_price, close_price, bar_identifier):
        # NautilusTrader drops a bar that breaks OHLC rules with only a log line, leaving a silent
        # hole; remember it so the fetch reports it through the pipeline's own bar validation.
        valid = super()._validate_bar_prices(bar_type, open_price, high_price, low_price, close_price, bar_identifier)
        if not valid:
            date = str(bar_identifier).removeprefix("bar.date=")
            self.rejected_bars.append(RejectedBar(str(bar_type), date, open_price, high_price, low_price, close_price))
        return valid

    def _start(self) -> None:
        # Same as the parent when the loop runs, but keep the task so ``shutdown`` can end it.
        self._start_task = self._create_task(self._start_async())

    async def _handle_request_error(self, req_id: int, error_code: int, error_string: str) -> None:
        request = self._requests.get(req_id=req_id)
        if request is not None and not request.future.done():
            request.future.set_exception(IbkrRequestError(error_code, error_string))
        await super()._handle_request_error(req_id, error_code, error_string)

    async def _await_request(
        self, request, timeout, default_value=None, suppress_timeout_warning=False, raise_on_error=False
    ):
        try:
            return await super()._await_request(request, timeout, default_value, True, raise_on_error=True)
        except TimeoutError:
            raise IbkrRequestTimeout(f"no answer from the gateway within {timeout:g} s") from None
        except ConnectionError:
            raise IbkrDisconnected("the gateway closed the connection during a request") from None

    async def _run_tws_incoming_msg_reader(self) -> None:
        await super()._run_tws_incoming_msg_reader()
        # The reader ends when the socket drops, but the parent fails pending requests only when
        # its watchdog resets the client about 6 s later; fail them now (on the loop's thread).
        if not self._is_shutting_down:
            for future in self._requests.get_futures():
                if not future.done():
                    future.set_exception(IbkrDisconnected("the gateway closed the connection during a request"))

    def _on_task_completed(self, actions, success, task: asyncio.Task) -> None:
        # The parent calls task.exception(), which raises on a task we cancelled at shutdown.
        if not task.cancelled():
            super()._on_task_completed(actions, success, task)

    async def shutdown(self) -> None:
        task = self._start_task
        # The connect step catches CancelledError and the retry loop goes on, so one cancel
        # is not always enough: cancel until the task has really ended.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=0.2)
        connection = self._eclient.conn
        if connection is not None and connection.socket is not None:
            try:  # wakes the reader thread now rather than at its 1 s socket timeout
                connection.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        await self._stop_async()


@dataclass(frozen=True)
class GatewayInfo:
    host: str
    port: int
    client_id: int
    server_version: int
    connection_time: str
    accounts: list[str]


class IbkrSession:
    """One gateway connection; ``async with IbkrSession(settings) as session:``."""

    def __init__(self, settings: IbkrSettings):
        self.settings = settings
        self._client: _FailFastClient | None = None
        self._data_client: InteractiveBrokersDataClient | None = None
        self._provider: InteractiveBrokersInstrumentProvider | None = None
        self._instruments: dict[tuple[str, str], tuple[Instrument, IBContract]] = {}

    async def __aenter__(self) -> IbkrSession:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.settings.resolved_port}"

    async def connect(self) -> GatewayInfo:
        settings = self.settings
        timeout = settings.connect_timeout
        await asyncio.to_thread(_probe, settings.host, settings.resolved_port, timeout)
        loop = asyncio.get_running_loop()
        clock = LiveClock()
        msgbus = MessageBus(TraderId("NTRADER-IBKR"), clock)
        cache = Cache()
        self._client = _FailFastClient(
            loop=loop,
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            host=settings.host,
            port=settings.resolved_port,
            client_id=settings.client_id,
            request_timeout_secs=int(settings.request_timeout),
        )
        self._provider = InteractiveBrokersInstrumentProvider(
            self._client, clock, InteractiveBrokersInstrumentProviderConfig(convert_exchange_to_mic_venue=True)
        )
        self._data_client = InteractiveBrokersDataClient(
            loop=loop,
            client=self._client,
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            instrument_provider=self._provider,
            ibg_client_id=settings.client_id,
            config=InteractiveBrokersDataClientConfig(
                market_data_type=getattr(MarketDataTypeEnum, settings.market_data_type),
                use_regular_trading_hours=settings.use_rth,
            ),
            connection_timeout=max(1, int(timeout)),
        )
        self._session().start()
        try:
            # What HistoricInteractiveBrokersClient.connect() awaits: handshake, market data type.
            await asyncio.wait_for(self._data_client._connect(), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            await self.close()
            raise IbkrConnectionError(
                f"{self.address} accepted the connection but the API handshake did not finish "
                f"within {timeout:g} s. {TROUBLESHOOTING}"
            ) from None
        except BaseException:
            await self.close()
            raise
        return self.info()

    def info(self) -> GatewayInfo:
        eclient = self._session()._eclient
        connection_time = eclient.connTime
        if isinstance(connection_time, bytes):
            connection_time = connection_time.decode(errors="replace")
        return GatewayInfo(
            host=self.settings.host,
            port=self.settings.resolved_port,
            client_id=self.settings.client_id,
            server_version=int(eclient.serverVersion()),
            connection_time=str(connection_time),
            accounts=sorted(self._session().accounts()),
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        self._instruments.clear()
        if client is not None:
            await client.shutdown()

    async def reconnect(self) -> None:
        await self.close()
        await self.connect()

    def _session(self) -> _FailFastClient:
        if self._client is None:
            raise IbkrConnectionError(f"not connected to {self.address}")
        return self._client

    def _instrument_provider(self) -> InteractiveBrokersInstrumentProvider:
        if self._provider is None:
            raise IbkrConnectionError(f"not connected to {self.address}")
        return self._provider

    async def answers(self, timeout: float) -> bool:
        """Whether the gateway is still answering: its time within ``timeout`` seconds."""
        return self._client is not None and await self._client.answers(timeout)

    async def instrument(self, symbol: str, exchange: str = "") -> tuple[Instrument, IBContract]:
        """The stock's instrument and qualified contract (IB error 200 when it does not exist).

        ``exchange`` is the primary exchange (``NYSE``, ``NASDAQ``...), needed when SMART routing
        finds the symbol listed more than once.
        """
        if (symbol, exchange) in self._instruments:
            return self._instruments[(symbol, exchange)]
        contract = IBContract(secType="STK", symbol=symbol, exchange="SMART", primaryExchange=exchange, currency="USD")
        # NautilusTrader's provider finds nothing when SMART answers with several listings; ask
        # for the details first so the error can name them.
        details = await self._session().get_contract_details(contract) or []
        listed = sorted({d.contract.primaryExchange for d in details if d.contract is not None})
        if len(listed) > 1:
            raise IbkrRequestError(
                200, f"{symbol} is listed on {', '.join(listed)}: name one, e.g. {symbol}:{listed[0]}"
            )
        if listed:
            contract = IBContract(
                secType="STK", symbol=symbol, exchange="SMART", primaryExchange=listed[0], currency="USD"
            )
        loaded = await self._instrument_provider().load_with_return_async(contract)
        if not loaded:
            raise IbkrRequestError(200, f"no US stock found for {symbol!r}" + (f" on {exchange}" if exchange else ""))
        instrument_id = loaded[0]
        found = (self._instrument_provider().find(instrument_id), self._instrument_provider().contract[instrument_id])
        self._instruments[(symbol, exchange)] = found
        return found

    async def head_timestamp(self, symbol: str, what_to_show: str, exchange: str = "") -> pd.Timestamp:
        """IB's earliest bar of this kind for the stock (``reqHeadTimeStamp``), in UTC.

        Raises ``IbkrRequestTimeout`` when IB does not answer within the request timeout (it is
        known to leave this request unanswered for some contracts).
        """
        _, contract = await self.instrument(symbol, exchange)
        eclient = self._session()._eclient
        answer = await self._session().request(
            ("head", symbol, exchange, what_to_show),
            lambda req_id: eclient.reqHeadTimeStamp(req_id, contract, what_to_show, int(self.settings.use_rth), 2),
            eclient.cancelHeadTimeStamp,
            self.settings.request_timeout,
        )
        text = str(answer[0])
        if text.isdigit():  # formatDate 2: epoch seconds
            return pd.Timestamp(int(text), unit="s", tz="UTC")
        return pd.Timestamp(pd.to_datetime(text, format="%Y%m%d-%H:%M:%S"), tz="UTC")

    async def bars(
        self,
        symbol: str,
        spec: str,
        end: pd.Timestamp | None,
        duration: str,
        what_to_show: str = "TRADES",
        exchange: str = "",
    ) -> tuple[list[Bar], list[RejectedBar]]:
        """One ``reqHistoricalData`` ending at ``end`` (UTC; ``None`` = now, as ADJUSTED_LAST needs).

        Returns the bars NautilusTrader accepted and the ones it dropped as invalid.
        """
        instrument, contract = await self.instrument(symbol, exchange)
        bar_type = BarType(instrument.id, BarSpecification.from_str(f"{spec}-LAST"), AggregationSource.EXTERNAL)
        end_text = "" if end is None else pd.Timestamp(end).tz_convert("UTC").strftime("%Y%m%d %H:%M:%S UTC")
        self._session().rejected_bars = []
        eclient = self._session()._eclient
        # The name's first item is what NautilusTrader parses each answered bar as.
        bars = await self._session().request(
            (str(bar_type), end_text or f"now-{duration}", what_to_show),
            lambda req_id: eclient.reqHistoricalData(
                reqId=req_id,
                contract=contract,
                endDateTime=end_text,
                durationStr=duration,
                barSizeSetting=bar_spec_to_bar_size(bar_type.spec),
                whatToShow=what_to_show,
                useRTH=self.settings.use_rth,
                formatDate=2,
                keepUpToDate=False,
                chartOptions=[],
            ),
            eclient.cancelHistoricalData,
            self.settings.request_timeout,
        )
        rejected = [r for r in self._session().rejected_bars if r.bar_type == str(bar_type)]
        return sorted(bars, key=lambda b: b.ts_init), rejected


def _probe(host: str, port: int, timeout: float) -> None:
    """Fail at once with a clear reason when nothing listens on the port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise IbkrConnectionError(f"cannot reach the gateway at {host}:{port} ({reason}). {TROUBLESHOOTING}") from None
