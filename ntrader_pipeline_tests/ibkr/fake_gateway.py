"""A fake IB Gateway on loopback that speaks the TWS API socket protocol at any server version.

It negotiates like a real gateway: the client offers a range (``v100..223``) and the gateway
answers the highest version both sides know, capped by ``max_version``. What goes over the wire
then depends on that version, as it does with IB:

- below 194 every message is NUL-separated text behind a text message id, and errors carry a
  version field;
- from 194 errors end with a time stamp and lose the version field;
- from 196 ``historicalData`` no longer ends its data set: ``historicalDataEnd`` (108) does;
- from 201 message ids are 4-byte binary integers, and a message id above 200 means the body is
  protobuf. Requests and answers switch to protobuf family by family at the versions ibapi lists
  in ``PROTOBUF_MSG_IDS`` (errors 201, contract data 205, accounts 207, historical data and head
  time stamps 208, ids and current time 213). The protobuf schemas come from ibapi (IB's own).

Requests it answers: ``startApi`` (nextValidId, managedAccounts, a farm-status notice),
``reqContractDetails`` (one detail per listing, or only the ``primaryExchange`` asked for, or
error 200), ``reqHistoricalData``, ``reqHeadTimeStamp``, ``reqCurrentTime`` and ``reqPositions``.
Historical requests honour ``endDateTime`` (empty = now; ``yyyymmdd HH:MM:SS <zone>``;
``yyyymmdd-HH:MM:SS`` in UTC), ``formatDate`` 1 and 2, ``whatToShow`` TRADES, ADJUSTED_LAST and
MIDPOINT, and ``useRTH``; they are refused with IB's codes where IB refuses them (321 for a
malformed request, a day count over 365, or an end date with ADJUSTED_LAST; 162 for a window
longer than the bar size allows, for no data, and for pacing violations).

Every historical request is logged with its arrival time, so a test can check a whole fetch
against IB's pacing rules. It can be made to misbehave as IB does: ``script`` answers a historical
request with an error, silence or a dropped connection; ``head_script`` leaves a head time stamp
unanswered; ``silent`` never finishes a handshake; ``stop_answering()`` hangs every open session.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import exchange_calendars
import pandas as pd
from ibapi.protobuf import (
    Contract_pb2,
    ContractData_pb2,
    ContractDataEnd_pb2,
    ContractDataRequest_pb2,
    ContractDetails_pb2,
    CurrentTime_pb2,
    ErrorMessage_pb2,
    HeadTimestamp_pb2,
    HeadTimestampRequest_pb2,
    HistoricalData_pb2,
    HistoricalDataEnd_pb2,
    HistoricalDataRequest_pb2,
    ManagedAccounts_pb2,
    NextValidId_pb2,
    PositionEnd_pb2,
)

MIN_VERSION, MAX_VERSION = 100, 223  # what this gateway can speak
SERVER_VERSION = 176  # the default cap: the version the original tests were written against
ACCOUNT = "DU1234567"
NEW_YORK = ZoneInfo("America/New_York")

# Versions at which the wire format changes (ibapi's server_versions names in brackets).
V_SIZE_RULES, V_ADVANCED_REJECT, V_BOND_ISSUER, V_FUND_FIELDS = 164, 166, 176, 179
V_LAST_TRADE_DATE, V_INELIGIBILITY, V_ERROR_TIME, V_HISTORICAL_DATA_END = 182, 186, 194, 196
V_RAW_MSG_ID = 201  # [PROTOBUF]: binary message ids, protobuf errors
V_PROTO_CONTRACT, V_PROTO_ACCOUNTS, V_PROTO_HISTORICAL, V_PROTO_REST_3 = 205, 207, 208, 213

# Message ids: client → gateway (OUT in ibapi) and gateway → client (IN).
REQ_CONTRACT_DATA, REQ_HISTORICAL_DATA, REQ_CURRENT_TIME, REQ_POSITIONS = 9, 20, 49, 61
START_API, REQ_HEAD_TIMESTAMP = 71, 87
ERR_MSG, NEXT_VALID_ID, CONTRACT_DATA, MANAGED_ACCTS, HISTORICAL_DATA, CURRENT_TIME = 4, 9, 10, 15, 17, 49
CONTRACT_DATA_END, POSITION_END, HEAD_TIMESTAMP, HISTORICAL_DATA_END = 52, 62, 88, 108
PROTOBUF_OFFSET = 200

# Which protobuf message a request arrives as, by message id (and from which version on).
PROTO_REQUESTS = {
    REQ_CONTRACT_DATA: (V_PROTO_CONTRACT, ContractDataRequest_pb2.ContractDataRequest),
    REQ_HISTORICAL_DATA: (V_PROTO_HISTORICAL, HistoricalDataRequest_pb2.HistoricalDataRequest),
    REQ_HEAD_TIMESTAMP: (V_PROTO_HISTORICAL, HeadTimestampRequest_pb2.HeadTimestampRequest),
}

DURATION_UNITS = {"S": 1, "D": 86_400, "W": 7 * 86_400, "M": 30 * 86_400, "Y": 365 * 86_400}
BAR_SIZES = {"1 min": 60, "5 mins": 300, "1 hour": 3600, "1 day": 86_400}
# Longest window IB serves per bar size (beyond it: 162 "Time length exceed max").
MAX_WINDOW = {"1 min": 7 * 86_400, "5 mins": 30 * 86_400, "1 hour": 30 * 86_400, "1 day": 30 * 365 * 86_400}
WHAT_TO_SHOW = ("TRADES", "ADJUSTED_LAST", "MIDPOINT")
NO_DATA = "Historical Market Data Service error message:HMDS query returned no data"


@dataclass(frozen=True)
class FakeBar:
    close_ns: int  # UTC close of the bar; a request window selects bars by it
    date: str  # epoch seconds of the open (intraday), YYYYMMDD (daily)
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def daily(self) -> bool:
        return len(self.date) == 8

    @property
    def open_time(self) -> pd.Timestamp:
        if self.daily:  # a daily bar opens with its session
            return pd.Timestamp(f"{self.date} 09:30", tz=NEW_YORK).tz_convert("UTC")
        return pd.Timestamp(int(self.date), unit="s", tz="UTC")


@dataclass(frozen=True)
class HistoricalRequest:
    at: float  # time.monotonic() on arrival
    req_id: int
    symbol: str
    end: str
    duration: str
    bar_size: str
    what_to_show: str
    use_rth: int
    format_date: int = 2
    primary_exchange: str = ""

    @property
    def key(self) -> tuple:
        """What IB compares to call two requests identical."""
        return (self.symbol, self.end, self.duration, self.bar_size, self.what_to_show, self.use_rth)


@dataclass
class Pacing:
    """IB's historical-data pacing limits (seconds); the defaults are IB's real ones."""

    max_requests: int = 60
    window: float = 600.0
    identical_interval: float = 15.0
    per_contract: int = 5
    per_contract_window: float = 2.0

    def violation(self, request: HistoricalRequest, earlier: list[HistoricalRequest]) -> str | None:
        now = request.at
        if sum(1 for r in earlier if now - r.at < self.window) >= self.max_requests:
            return f"more than {self.max_requests} requests within {self.window:g} s"
        if any(r.key == request.key and now - r.at < self.identical_interval for r in earlier):
            return f"identical request within {self.identical_interval:g} s"
        same = [r for r in earlier if r.symbol == request.symbol and now - r.at < self.per_contract_window]
        if len(same) >= self.per_contract:
            return f"more than {self.per_contract} requests for {request.symbol} within {self.per_contract_window:g} s"
        return None


class RequestRefused(Exception):
    """IB's answer to a request it will not serve: an error code and text."""

    def __init__(self, code: int, text: str):
        super().__init__(code, text)
        self.code, self.text = code, text


# What the gateway does with one historical request: serve it, or answer with an action.
SERVE, SILENCE, DISCONNECT = "serve", "silence", "disconnect"


@dataclass
class FakeGateway:
    """Run with ``with FakeGateway(bars) as gw: ... gw.port``; every socket is closed on exit."""

    bars: dict[str, list[FakeBar]] = field(default_factory=dict)  # TRADES bars, by symbol
    pacing: Pacing | None = field(default_factory=Pacing)
    silent: bool = False  # accept connections, never answer anything
    # Called for each historical request; returns SERVE, SILENCE, DISCONNECT or (code, message).
    script: Callable[[HistoricalRequest], object] | None = None
    # Called with the symbol of each reqHeadTimeStamp; returns SERVE, SILENCE or (code, message).
    head_script: Callable[[str], object] | None = None
    max_version: int = SERVER_VERSION
    adjusted: dict[str, list[FakeBar]] = field(default_factory=dict)  # ADJUSTED_LAST bars (default: TRADES)
    listings: dict[str, list[str]] = field(default_factory=dict)  # primary exchanges (default NASDAQ)
    now: pd.Timestamp | None = None  # the gateway's clock (default: the real time)

    def __post_init__(self) -> None:
        self.requests: list[HistoricalRequest] = []
        self.head_requests: list[tuple[str, str, int]] = []  # (symbol, whatToShow, useRTH)
        self.contract_requests: list[tuple[str, str]] = []  # (symbol, primaryExchange)
        self.violations: list[tuple[HistoricalRequest, str]] = []
        self.versions: list[int] = []  # negotiated, per connection
        self.connections = 0
        self.time_requests = 0
        self.answering = True  # False: sessions stay open, every request is read and left unanswered
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._clients: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._calendar = exchange_calendars.get_calendar("XNYS")
        self._hours: dict[str, tuple[int, int] | None] = {}  # regular hours (UTC ns) by New York date

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> FakeGateway:
        thread = threading.Thread(target=self._accept_loop, name="fake-ib-gateway", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._closing = True
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self._server.close()
        with self._lock:
            for client in self._clients:
                _close(client)
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._clients.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), name="fake-ib-session", daemon=True)
            thread.start()
            self._threads.append(thread)

    def clock(self) -> pd.Timestamp:
        return self.now if self.now is not None else pd.Timestamp.now(tz="UTC")

    def stop_answering(self) -> None:
        """Hang as a gateway does mid-restart: connections stay open, nothing is answered any more."""
        self.answering = False

    # -- one client session ----------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        reader = _Reader(conn)
        try:
            if reader.exact(4) != b"API\0":
                return
            offered = reader.message()
            if offered is None:
                return
            if self.silent:
                while reader.message() is not None:
                    pass
                return
            version = self._negotiate(offered.decode())
            if version is None:
                return  # no common version: a real gateway drops the connection too
            self.versions.append(version)
            wire = _Wire(conn, version)
            connected_at = self.clock().tz_convert(NEW_YORK).strftime("%Y%m%d %H:%M:%S US/Eastern")
            conn.sendall(_frame(_fields(version, connected_at)))
            while (payload := reader.message()) is not None:
                if not self._handle(wire, *wire.decode(payload)):
                    return
        except OSError:
            return
        finally:
            _close(conn)

    def _negotiate(self, offered: str) -> int | None:
        """The highest version both sides speak, from the client's ``vMIN..MAX`` (or ``vN``)."""
        low, _, high = offered.removeprefix("v").partition("..")
        low_version, high_version = int(low), int(high or low)
        version = min(high_version, self.max_version, MAX_VERSION)
        return version if version >= max(low_version, MIN_VERSION) else None

    def _handle(self, wire: _Wire, msg_id: int, request) -> bool:
        """Answer one client message; False means drop the connection."""
        if msg_id == REQ_CURRENT_TIME:
            self.time_requests += 1
        if not self.answering:
            return True
        if msg_id == START_API:
            wire.next_valid_id(1)
            wire.managed_accounts(ACCOUNT)
            wire.error(-1, 2104, "Market data farm connection is OK:usfarm")
        elif msg_id == REQ_CONTRACT_DATA:
            self._contract_details(wire, request)
        elif msg_id == REQ_HEAD_TIMESTAMP:
            self._head_timestamp(wire, request)
        elif msg_id == REQ_CURRENT_TIME:
            wire.current_time(int(self.clock().timestamp()))
        elif msg_id == REQ_POSITIONS:
            wire.position_end()
        elif msg_id == REQ_HISTORICAL_DATA:
            return self._historical(wire, request)
        return True  # market data type, cancels and anything else: nothing to answer

    def _contract_details(self, wire: _Wire, request: dict) -> None:
        symbol, primary = request["symbol"], request["primaryExchange"]
        self.contract_requests.append((symbol, primary))
        exchanges = self.listings.get(symbol, ["NASDAQ"])
        chosen = [e for e in exchanges if not primary or e == primary]
        if symbol not in self.bars or request["secType"] != "STK" or not chosen:
            wire.error(request["reqId"], 200, "No security definition has been found for the request")
            return
        for exchange in chosen:
            wire.contract_details(request["reqId"], symbol, exchange, exchanges.index(exchange))
        wire.contract_details_end(request["reqId"])

    def _head_timestamp(self, wire: _Wire, request: dict) -> None:
        symbol = request["symbol"]
        self.head_requests.append((symbol, request["whatToShow"], int(request["useRTH"])))
        action = self.head_script(symbol) if self.head_script else SERVE
        if action == SILENCE:
            return
        if isinstance(action, tuple):
            wire.error(request["reqId"], *action)
            return
        try:
            bars = self._series(symbol, request["whatToShow"], int(request["useRTH"]))
        except RequestRefused as refused:
            wire.error(request["reqId"], refused.code, refused.text)
            return
        first = bars[0].open_time
        stamp = str(int(first.timestamp())) if int(request["formatDate"]) == 2 else first.strftime("%Y%m%d-%H:%M:%S")
        wire.head_timestamp(request["reqId"], stamp)

    def _historical(self, wire: _Wire, fields: dict) -> bool:
        request = HistoricalRequest(
            at=time.monotonic(),
            req_id=int(fields["reqId"]),
            symbol=fields["symbol"],
            end=fields["endDateTime"],
            bar_size=fields["barSizeSetting"],
            duration=fields["durationStr"],
            use_rth=int(fields["useRTH"]),
            what_to_show=fields["whatToShow"],
            format_date=int(fields["formatDate"]),
            primary_exchange=fields["primaryExchange"],
        )
        with self._lock:
            earlier = list(self.requests)
            self.requests.append(request)
        broken = self.pacing.violation(request, earlier) if self.pacing else None
        if broken:
            self.violations.append((request, broken))
            wire.error(request.req_id, 162, f"Historical Market Data Service error message:pacing violation ({broken})")
            return True
        action = self.script(request) if self.script else SERVE
        if action == DISCONNECT:
            return False
        if action == SILENCE:
            return True
        if isinstance(action, tuple):
            wire.error(request.req_id, *action)
            return True
        try:
            start, end, bars = self._select(request)
        except RequestRefused as refused:
            wire.error(request.req_id, refused.code, refused.text)
            return True
        dates = [_bar_date(b, request.format_date) for b in bars]
        wire.historical_data(
            request.req_id,
            start.strftime("%Y%m%d %H:%M:%S"),
            end.strftime("%Y%m%d %H:%M:%S"),
            bars,
            dates,
            midpoint=request.what_to_show == "MIDPOINT",
        )
        return True

    # -- what IB serves --------------------------------------------------------------------------

    def _series(self, symbol: str, what_to_show: str, use_rth: int) -> list[FakeBar]:
        if symbol not in self.bars:
            raise RequestRefused(200, "No security definition has been found for the request")
        if what_to_show not in WHAT_TO_SHOW:
            raise RequestRefused(321, f"Error validating request.-'bS' : cause - Invalid whatToShow {what_to_show}")
        bars = self.adjusted.get(symbol, self.bars[symbol]) if what_to_show == "ADJUSTED_LAST" else self.bars[symbol]
        if use_rth:
            bars = [b for b in bars if self._regular(b)]
        if not bars:
            raise RequestRefused(162, NO_DATA)
        return bars

    def _regular(self, bar: FakeBar) -> bool:
        """Whether a bar lies inside the regular hours of an XNYS session."""
        if bar.daily:
            return True
        seconds = int(bar.date)
        opened = seconds * 10**9
        day = datetime.fromtimestamp(seconds, NEW_YORK).strftime("%Y-%m-%d")
        if day not in self._hours:
            calendar = self._calendar
            is_session = calendar.is_session(day)
            self._hours[day] = (
                (calendar.session_open(day).value, calendar.session_close(day).value) if is_session else None
            )
        hours = self._hours[day]
        return hours is not None and hours[0] <= opened < hours[1]

    def _select(self, request: HistoricalRequest) -> tuple[pd.Timestamp, pd.Timestamp, list[FakeBar]]:
        if request.bar_size not in BAR_SIZES:
            raise RequestRefused(321, f"Error validating request.-'bS' : cause - Invalid bar size {request.bar_size}")
        if request.what_to_show == "ADJUSTED_LAST" and request.end:
            raise RequestRefused(
                321, "Error validating request.-'bO' : cause - End date not supported with adjusted last"
            )
        end = self._end_time(request.end)
        try:
            number, unit = request.duration.split()
            seconds = int(number) * DURATION_UNITS[unit]
        except (ValueError, KeyError):
            raise RequestRefused(
                321, f"Error validating request.-'bP' : cause - Invalid duration {request.duration!r}"
            ) from None
        if unit == "D" and int(number) > 365:
            raise RequestRefused(
                321,
                "Error validating request.-'bX' : cause - Historical data requests for durations longer "
                "than 365 days must be made in years",
            )
        if seconds > MAX_WINDOW[request.bar_size]:
            raise RequestRefused(162, "Historical Market Data Service error message:Time length exceed max.")
        start = end - pd.Timedelta(seconds=seconds)
        series = self._series(request.symbol, request.what_to_show, request.use_rth)
        selected = [b for b in series if start.value < b.close_ns <= end.value]
        if not selected:
            raise RequestRefused(162, NO_DATA)
        return start, end, selected

    def _end_time(self, text: str) -> pd.Timestamp:
        """IB's ``endDateTime`` forms: empty (now), ``yyyymmdd HH:MM:SS zone``, ``yyyymmdd-HH:MM:SS`` (UTC)."""
        if not text:
            return self.clock()
        try:
            if "-" in text and " " not in text:
                return pd.Timestamp(datetime.strptime(text, "%Y%m%d-%H:%M:%S"), tz="UTC")
            day, clock, *zone = text.split()
            local = datetime.strptime(f"{day} {clock}", "%Y%m%d %H:%M:%S")
            return pd.Timestamp(local, tz=ZoneInfo(zone[0]) if zone else NEW_YORK).tz_convert("UTC")
        except (ValueError, ZoneInfoNotFoundError):
            raise RequestRefused(
                321, f"Error validating request.-'bN' : cause - Invalid end date/time format {text!r}"
            ) from None


def _bar_date(bar: FakeBar, format_date: int) -> str:
    """A bar's date as IB sends it: daily bars as yyyymmdd; intraday as epoch seconds (2) or local text (1)."""
    if bar.daily or format_date == 2:
        return bar.date
    return bar.open_time.tz_convert(NEW_YORK).strftime("%Y%m%d %H:%M:%S US/Eastern")


# -- wire format ---------------------------------------------------------------------------------


class _Wire:
    """One connection's encoder and decoder at its negotiated version."""

    def __init__(self, conn: socket.socket, version: int):
        self.conn = conn
        self.version = version

    # framing

    def decode(self, payload: bytes) -> tuple[int, object]:
        """(message id, request fields) of one client message, text or protobuf."""
        if self.version >= V_RAW_MSG_ID:
            msg_id, body = struct.unpack("!I", payload[:4])[0], payload[4:]
            if msg_id > PROTOBUF_OFFSET:
                msg_id -= PROTOBUF_OFFSET
                return msg_id, _proto_request(msg_id, body)
        else:
            msg_id_text, _, body = payload.partition(b"\0")
            msg_id = int(msg_id_text)
        fields = [f.decode() for f in body.split(b"\0")[:-1]]
        return msg_id, _text_request(msg_id, fields)

    def text(self, msg_id: int, *values) -> None:
        head = struct.pack("!I", msg_id) if self.version >= V_RAW_MSG_ID else _fields(msg_id)
        self.conn.sendall(_frame(head + _fields(*values)))

    def proto(self, msg_id: int, message) -> None:
        self.conn.sendall(_frame(struct.pack("!I", msg_id + PROTOBUF_OFFSET) + message.SerializeToString()))

    # messages

    def error(self, req_id: int, code: int, text: str) -> None:
        now_ms = int(time.time() * 1000)
        if self.version >= V_RAW_MSG_ID:
            self.proto(
                ERR_MSG, ErrorMessage_pb2.ErrorMessage(id=req_id, errorTime=now_ms, errorCode=code, errorMsg=text)
            )
        elif self.version >= V_ERROR_TIME:
            self.text(ERR_MSG, req_id, code, text, "", now_ms)
        elif self.version >= V_ADVANCED_REJECT:
            self.text(ERR_MSG, 2, req_id, code, text, "")
        else:
            self.text(ERR_MSG, 2, req_id, code, text)

    def next_valid_id(self, order_id: int) -> None:
        if self.version >= V_PROTO_REST_3:
            self.proto(NEXT_VALID_ID, NextValidId_pb2.NextValidId(orderId=order_id))
        else:
            self.text(NEXT_VALID_ID, 1, order_id)

    def managed_accounts(self, accounts: str) -> None:
        if self.version >= V_PROTO_ACCOUNTS:
            self.proto(MANAGED_ACCTS, ManagedAccounts_pb2.ManagedAccounts(accountsList=accounts))
        else:
            self.text(MANAGED_ACCTS, 1, accounts)

    def position_end(self) -> None:
        if self.version >= V_PROTO_ACCOUNTS:
            self.proto(POSITION_END, PositionEnd_pb2.PositionEnd())
        else:
            self.text(POSITION_END, 1)

    def current_time(self, seconds: int) -> None:
        if self.version >= V_PROTO_REST_3:
            self.proto(CURRENT_TIME, CurrentTime_pb2.CurrentTime(currentTime=seconds))
        else:
            self.text(CURRENT_TIME, 1, seconds)

    def head_timestamp(self, req_id: int, stamp: str) -> None:
        if self.version >= V_PROTO_HISTORICAL:
            self.proto(HEAD_TIMESTAMP, HeadTimestamp_pb2.HeadTimestamp(reqId=req_id, headTimestamp=stamp))
        else:
            self.text(HEAD_TIMESTAMP, req_id, stamp)

    def contract_details(self, req_id: int, symbol: str, exchange: str, listing: int) -> None:
        con_id = 100_000 + sum(map(ord, symbol)) + 1_000_000 * listing
        long_name, isin = f"{symbol} INC", f"US{symbol:0<9}{listing}"
        if self.version >= V_PROTO_CONTRACT:
            contract = Contract_pb2.Contract(
                conId=con_id,
                symbol=symbol,
                secType="STK",
                exchange="SMART",
                primaryExch=exchange,
                currency="USD",
                localSymbol=symbol,
                tradingClass="NMS",
            )
            details = ContractDetails_pb2.ContractDetails(
                marketName="NMS",
                minTick="0.01",
                orderTypes="LMT,MKT",
                validExchanges=f"SMART,{exchange}",
                priceMagnifier=1,
                longName=long_name,
                industry="Technology",
                timeZoneId="US/Eastern",
                stockType="COMMON",
                aggGroup=1,
                marketRuleIds="26",
                minSize="1",
                sizeIncrement="1",
                suggestedSizeIncrement="100",
            )
            details.secIdList["ISIN"] = isin
            self.proto(
                CONTRACT_DATA, ContractData_pb2.ContractData(reqId=req_id, contract=contract, contractDetails=details)
            )
            return
        version = self.version
        values: list = [] if version >= V_SIZE_RULES else [8]
        values += [req_id, symbol, "STK", ""]
        if version >= V_LAST_TRADE_DATE:
            values += [""]
        values += [0, "", "SMART", "USD", symbol, "NMS", "NMS", con_id, 0.01]
        if version < V_SIZE_RULES:
            values += [1]  # mdSizeMultiplier
        values += [
            "",
            "LMT,MKT",
            f"SMART,{exchange}",
            1,
            0,
            long_name,
            exchange,
            "",
            "Technology",
            "",
            "",
            "US/Eastern",
            "",
            "",
            "",
            0,
            1,
            "ISIN",
            isin,
            1,
            "",
            "",
            "26",
            "",
            "COMMON",
        ]
        values += [1, 1, 100] if version >= V_SIZE_RULES else [1]
        if version >= V_INELIGIBILITY:
            values += [0]
        self.text(CONTRACT_DATA, *values)

    def contract_details_end(self, req_id: int) -> None:
        if self.version >= V_PROTO_CONTRACT:
            self.proto(CONTRACT_DATA_END, ContractDataEnd_pb2.ContractDataEnd(reqId=req_id))
        else:
            self.text(CONTRACT_DATA_END, 1, req_id)

    def historical_data(
        self, req_id: int, start: str, end: str, bars: list[FakeBar], dates: list[str], midpoint: bool = False
    ) -> None:
        def volume(bar):
            return -1 if midpoint else int(bar.volume)

        if self.version >= V_PROTO_HISTORICAL:
            message = HistoricalData_pb2.HistoricalData(reqId=req_id)
            for bar, date in zip(bars, dates):
                message.historicalDataBars.add(
                    date=date,
                    open=bar.open,
                    high=bar.high,
                    low=bar.low,
                    close=bar.close,
                    volume=str(volume(bar)),
                    WAP=str(bar.close),
                    barCount=-1 if midpoint else 1,
                )
            self.proto(HISTORICAL_DATA, message)
            self.proto(
                HISTORICAL_DATA_END,
                HistoricalDataEnd_pb2.HistoricalDataEnd(reqId=req_id, startDateStr=start, endDateStr=end),
            )
            return
        values: list = [req_id]
        if self.version < V_HISTORICAL_DATA_END:
            values += [start, end]
        values += [len(bars)]
        for bar, date in zip(bars, dates):
            values += [date, bar.open, bar.high, bar.low, bar.close, volume(bar), bar.close, -1 if midpoint else 1]
        self.text(HISTORICAL_DATA, *values)
        if self.version >= V_HISTORICAL_DATA_END:
            self.text(HISTORICAL_DATA_END, req_id, start, end)


def _text_request(msg_id: int, fields: list[str]) -> dict | list[str]:
    """Named fields of the text requests the gateway answers (positions as ibapi writes them)."""
    if msg_id == REQ_CONTRACT_DATA:  # version, reqId, conId, symbol, secType, ..., exchange, primaryExchange
        return {"reqId": int(fields[1]), "symbol": fields[3], "secType": fields[4], "primaryExchange": fields[10]}
    if msg_id == REQ_HISTORICAL_DATA:  # reqId, 13 contract fields, end, bar size, duration, rth, what, format
        names = ["endDateTime", "barSizeSetting", "durationStr", "useRTH", "whatToShow", "formatDate"]
        return {
            "reqId": fields[0],
            "symbol": fields[2],
            "primaryExchange": fields[9],
            **dict(zip(names, fields[14:20])),
        }
    if msg_id == REQ_HEAD_TIMESTAMP:  # reqId, 13 contract fields, useRTH, whatToShow, formatDate
        return {
            "reqId": int(fields[0]),
            "symbol": fields[2],
            "useRTH": fields[14],
            "whatToShow": fields[15],
            "formatDate": fields[16],
        }
    return fields


def _proto_request(msg_id: int, body: bytes) -> dict | None:
    if msg_id not in PROTO_REQUESTS:
        return None  # startApi, market data type and the like: nothing the gateway needs from them
    _, cls = PROTO_REQUESTS[msg_id]
    message = cls.FromString(body)
    contract = message.contract
    request = {
        "reqId": message.reqId,
        "symbol": contract.symbol,
        "secType": contract.secType,
        "primaryExchange": contract.primaryExch,
    }
    if msg_id == REQ_HISTORICAL_DATA:
        request.update(
            endDateTime=message.endDateTime,
            barSizeSetting=message.barSizeSetting,
            durationStr=message.duration,
            useRTH=int(message.useRTH),
            whatToShow=message.whatToShow,
            formatDate=message.formatDate,
        )
    elif msg_id == REQ_HEAD_TIMESTAMP:
        request.update(useRTH=int(message.useRTH), whatToShow=message.whatToShow, formatDate=message.formatDate)
    return request


# -- fixtures ------------------------------------------------------------------------------------


def daily_bars(frame: pd.DataFrame) -> list[FakeBar]:
    """Bars from a validated daily frame (ts_event = session close) as IB would send them."""
    dates = pd.to_datetime(frame["ts_event"], utc=True).dt.tz_convert("America/New_York").dt.strftime("%Y%m%d")
    return [
        FakeBar(int(ts), d, o, h, lo, c, v)
        for ts, d, o, h, lo, c, v in zip(
            frame["ts_event"], dates, frame["open"], frame["high"], frame["low"], frame["close"], frame["volume"]
        )
    ]


def minute_bars(csv_path, timezone: str = "America/New_York") -> list[FakeBar]:
    """One-minute bars straight from a CSV, bad rows included (a real feed is not validated)."""
    raw = pd.read_csv(csv_path)
    opens = pd.to_datetime(raw["timestamp"]).dt.tz_localize(timezone).dt.tz_convert("UTC")
    open_s = (opens - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return [
        FakeBar(int(s + 60) * 1_000_000_000, str(int(s)), o, h, lo, c, v)
        for s, o, h, lo, c, v in zip(open_s, raw["open"], raw["high"], raw["low"], raw["close"], raw["volume"])
    ]


def synthetic_minutes(days, first: str = "09:30", last: str = "15:59", base: float = 100.0) -> list[FakeBar]:
    """One bar per minute from ``first`` to ``last`` (New York) on each day, prices rising slowly."""
    bars = []
    for day in days:
        opens = pd.date_range(
            f"{pd.Timestamp(day).date()} {first}",
            f"{pd.Timestamp(day).date()} {last}",
            freq="min",
            tz="America/New_York",
        )
        for i, t in enumerate(opens):
            seconds = int(t.timestamp())
            price = round(base + i / 100, 2)
            bars.append(FakeBar((seconds + 60) * 10**9, str(seconds), price, price + 0.02, price - 0.02, price, 100))
    return bars


# -- bytes ---------------------------------------------------------------------------------------


def _fields(*values) -> bytes:
    return b"".join(str(v).encode() + b"\0" for v in values)


def _frame(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


class _Reader:
    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.buffer = b""

    def exact(self, n: int) -> bytes | None:
        while len(self.buffer) < n:
            chunk = self.conn.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def message(self) -> bytes | None:
        header = self.exact(4)
        if header is None:
            return None
        return self.exact(struct.unpack("!I", header)[0])


def _close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()
