"""A fake IB Gateway on loopback that speaks the TWS API socket protocol (classic encoding).

It answers the real NautilusTrader/ibapi client byte for byte: the ``API\\0`` handshake, the
server version and connection time, ``startApi`` → ``nextValidId`` + ``managedAccounts``,
``reqContractDetails`` → ``contractDetails`` + ``contractDetailsEnd`` (or error 200), and
``reqHistoricalData`` → one ``historicalData`` message (bars from a fixture) or an error.

Server version 176 is announced on purpose: it is below 201, where ibapi switches requests and
answers to protobuf and a binary message id, and below 194/196, so errors carry no time stamp
and ``historicalData`` still ends its own data set (no separate ``historicalDataEnd``). Every
message stays a NUL-separated text list, which the encoders below write by hand.

The gateway also enforces IB's pacing rules the way IB does (error 162 on a violation) and logs
every historical request with its arrival time, so a test can check a whole fetch against them.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

SERVER_VERSION = 176
ACCOUNT = "DU1234567"

# Incoming (client → gateway) and outgoing (gateway → client) message ids of the classic protocol.
REQ_CONTRACT_DATA, REQ_HISTORICAL_DATA, START_API = 9, 20, 71
ERR_MSG, NEXT_VALID_ID, CONTRACT_DATA, MANAGED_ACCTS, HISTORICAL_DATA, CONTRACT_DATA_END = 4, 9, 10, 15, 17, 52

DURATION_UNITS = {"S": 1, "D": 86_400, "W": 7 * 86_400, "M": 30 * 86_400, "Y": 365 * 86_400}
BAR_SIZES = {"1 min": 60, "5 mins": 300, "1 hour": 3600, "1 day": 86_400}


@dataclass(frozen=True)
class FakeBar:
    close_ns: int  # UTC close of the bar; a request window selects bars by it
    date: str  # what IB sends: epoch seconds of the open (intraday), YYYYMMDD (daily)
    open: float
    high: float
    low: float
    close: float
    volume: float


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


# What the gateway does with one historical request: serve it, or answer with an action.
SERVE, SILENCE, DISCONNECT = "serve", "silence", "disconnect"


@dataclass
class FakeGateway:
    """Run with ``with FakeGateway(bars) as gw: ... gw.port``; every socket is closed on exit."""

    bars: dict[str, list[FakeBar]] = field(default_factory=dict)  # by symbol
    pacing: Pacing | None = field(default_factory=Pacing)
    silent: bool = False  # accept connections, never answer anything
    # Called for each historical request; returns SERVE, SILENCE, DISCONNECT or (code, message).
    script: Callable[[HistoricalRequest], object] | None = None

    def __post_init__(self) -> None:
        self.requests: list[HistoricalRequest] = []
        self.violations: list[tuple[HistoricalRequest, str]] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._clients: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closing = False

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

    # -- one client session ----------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        reader = _Reader(conn)
        try:
            prefix = reader.exact(4)
            if prefix != b"API\0":
                return
            reader.message()  # "v100..223": we answer with our fixed version
            if self.silent:
                while reader.message() is not None:
                    pass
                return
            connected_at = pd.Timestamp.now(tz="America/New_York").strftime("%Y%m%d %H:%M:%S EST")
            conn.sendall(_frame(_fields(SERVER_VERSION, connected_at)))
            while (payload := reader.message()) is not None:
                fields = payload.split(b"\0")[:-1]
                if not self._handle(conn, int(fields[0]), [f.decode() for f in fields[1:]]):
                    return
        except OSError:
            return
        finally:
            _close(conn)

    def _handle(self, conn: socket.socket, msg_id: int, fields: list[str]) -> bool:
        """Answer one client message; False means drop the connection."""
        if msg_id == START_API:
            conn.sendall(_message(NEXT_VALID_ID, 1, 1))
            conn.sendall(_message(MANAGED_ACCTS, 1, ACCOUNT))
            conn.sendall(_message(ERR_MSG, 2, -1, 2104, "Market data farm connection is OK:usfarm", ""))
        elif msg_id == REQ_CONTRACT_DATA:
            req_id, symbol, sec_type = int(fields[1]), fields[3], fields[4]
            if symbol in self.bars and sec_type == "STK":
                conn.sendall(_message(CONTRACT_DATA, *_stock_details(req_id, symbol)))
                conn.sendall(_message(CONTRACT_DATA_END, 1, req_id))
            else:
                conn.sendall(_error(req_id, 200, "No security definition has been found for the request"))
        elif msg_id == REQ_HISTORICAL_DATA:
            request = HistoricalRequest(
                at=time.monotonic(),
                req_id=int(fields[0]),
                symbol=fields[2],
                end=fields[14],
                bar_size=fields[15],
                duration=fields[16],
                use_rth=int(fields[17]),
                what_to_show=fields[18],
            )
            with self._lock:
                earlier = list(self.requests)
                self.requests.append(request)
            broken = self.pacing.violation(request, earlier) if self.pacing else None
            if broken:
                self.violations.append((request, broken))
                conn.sendall(_error(request.req_id, 162, f"Historical Market Data Service error message:pacing violation ({broken})"))
                return True
            action = self.script(request) if self.script else SERVE
            if action == DISCONNECT:
                return False
            if action == SILENCE:
                return True
            if isinstance(action, tuple):
                conn.sendall(_error(request.req_id, *action))
                return True
            if request.symbol not in self.bars:
                conn.sendall(_error(request.req_id, 200, "No security definition has been found for the request"))
                return True
            conn.sendall(self._historical_data(request))
        return True  # market data type, cancels and anything else: nothing to answer

    def _historical_data(self, request: HistoricalRequest) -> bytes:
        end = pd.Timestamp(request.end.replace(" UTC", ""), tz="UTC")
        number, unit = request.duration.split()
        start = end - pd.Timedelta(seconds=int(number) * DURATION_UNITS[unit])
        start_ns, end_ns = start.value, end.value
        selected = [b for b in self.bars[request.symbol] if start_ns < b.close_ns <= end_ns]
        values: list = [request.req_id, start.strftime("%Y%m%d %H:%M:%S"), end.strftime("%Y%m%d %H:%M:%S"), len(selected)]
        for bar in selected:
            values += [bar.date, bar.open, bar.high, bar.low, bar.close, int(bar.volume), bar.close, 1]
        return _message(HISTORICAL_DATA, *values)


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


# -- wire format ---------------------------------------------------------------------------------


def _fields(*values) -> bytes:
    return b"".join(str(v).encode() + b"\0" for v in values)


def _frame(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


def _message(msg_id: int, *values) -> bytes:
    return _frame(_fields(msg_id, *values))


def _error(req_id: int, code: int, text: str) -> bytes:
    return _message(ERR_MSG, 2, req_id, code, text, "")


def _stock_details(req_id: int, symbol: str) -> list:
    """``contractDetails`` fields for a Nasdaq stock, in the order server version 176 sends them."""
    return [
        req_id, symbol, "STK", "", 0, "", "SMART", "USD", symbol, "NMS", "NMS", 100_000 + sum(map(ord, symbol)),
        0.01, "", "LMT,MKT", "SMART,NASDAQ", 1, 0, f"{symbol} INC", "NASDAQ", "", "Technology", "", "",
        "US/Eastern", "", "", "", 0, 1, "ISIN", f"US{symbol:0<9}0", 1, "", "", "26", "", "COMMON", 1, 1, 100,
    ]


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

