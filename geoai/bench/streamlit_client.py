"""A minimal Streamlit client over the app's own websocket protocol (no browser).

It speaks what the browser speaks: a `BackMsg` with every widget's value asks for a script
run; the server answers with `ForwardMsg` deltas (the page's elements) until the run
finishes. Used by the load test (`python -m geoai.bench serve`) and the container test to
play whole games against a running server. Localhost servers only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a page with photos and a map is a few MB at most


class ClientError(RuntimeError):
    """The server did not answer as a browser would expect (closed, timed out, exception)."""


@dataclass
class Page:
    """The elements one script run drew, in arrival order, by element type."""
    elements: list = field(default_factory=list)  # streamlit.proto Element messages

    def of_type(self, kind: str) -> list:
        return [e for e in self.elements if e.WhichOneof("type") == kind]

    def widget(self, kind: str, label: str):
        """The widget (its proto, e.g. Button) of this type whose label is or starts with
        `label`; ClientError if absent."""
        for element in self.of_type(kind):
            proto = getattr(element, kind)
            if str(getattr(proto, "label", "")).startswith(label):
                return proto
        raise ClientError(f"no {kind} labelled {label!r} on the page; it shows: {self.summary()}")

    def has_widget(self, kind: str, label: str) -> bool:
        return any(str(getattr(getattr(e, kind), "label", "")).startswith(label) for e in self.of_type(kind))

    def texts(self) -> list[str]:
        """Visible text: markdown, headings, alerts, captions, exceptions."""
        out = []
        for element in self.elements:
            kind = element.WhichOneof("type")
            if kind in ("markdown", "heading", "text"):
                out.append(getattr(element, kind).body)
            elif kind == "alert":
                out.append(element.alert.body)
            elif kind == "exception":
                out.append(f"{element.exception.type}: {element.exception.message}")
        return out

    def alerts(self, format_name: str) -> list[str]:
        """Alert bodies of one kind: "ERROR", "WARNING", "INFO" or "SUCCESS"."""
        from streamlit.proto.Alert_pb2 import Alert
        wanted = Alert.Format.Value(format_name)
        return [e.alert.body for e in self.of_type("alert") if e.alert.format == wanted]

    def summary(self, limit: int = 400) -> str:
        return " | ".join(self.texts())[:limit]


class StreamlitSession:
    """One browser tab: a websocket session that runs the app's script on request."""

    def __init__(self, url: str, timeout_s: float = 60.0):
        parts = urlsplit(url)
        if parts.hostname not in LOCAL_HOSTS:
            raise ClientError(f"only local servers are driven, not {parts.hostname!r}")
        self.ws_url = f"ws://{parts.netloc}/_stcore/stream"
        self.timeout_s = timeout_s
        self.widgets: dict[str, WidgetState] = {}  # values the "browser" holds, sent with every run
        self.session_id = ""
        self.page_script_hash = ""
        self.assets: set[str] = set()  # URL paths a browser would load for the page's components
        self._connection = self._ws = None

    def __enter__(self) -> "StreamlitSession":
        from websockets.sync.client import connect
        try:
            self._connection = connect(self.ws_url, subprotocols=["streamlit"], open_timeout=self.timeout_s,
                                       max_size=MAX_MESSAGE_BYTES, compression=None)
            self._ws = self._connection.__enter__()
        except (OSError, TimeoutError) as exc:
            raise ClientError(f"cannot connect to {self.ws_url}: {exc}") from exc
        return self

    def __exit__(self, *exc) -> None:
        if self._connection is not None:
            self._connection.__exit__(*exc)
            self._connection = self._ws = None

    # -- widget values -----------------------------------------------------------------
    def set_string(self, widget_id: str, value: str) -> None:
        self.widgets[widget_id] = WidgetState(id=widget_id, string_value=value)

    def set_int(self, widget_id: str, value: int) -> None:
        self.widgets[widget_id] = WidgetState(id=widget_id, int_value=value)

    def set_json(self, widget_id: str, value: str) -> None:
        self.widgets[widget_id] = WidgetState(id=widget_id, json_value=value)

    # -- script runs -------------------------------------------------------------------
    def run(self, triggers: dict[str, WidgetState] | None = None) -> Page:
        """Ask for a script run with the held widget values plus one-shot `triggers` (button
        presses), and return the page drawn by the run that finishes it (after any
        st.rerun()). ClientError on a closed socket, a timeout or an uncaught exception."""
        msg = BackMsg()
        state = msg.rerun_script
        state.page_script_hash = self.page_script_hash
        states = [*self.widgets.values(), *(triggers or {}).values()]
        state.widget_states.widgets.extend(states)
        self._ws.send(msg.SerializeToString())
        return self._read_until_finished()

    def click(self, button_id: str) -> Page:
        return self.run({button_id: WidgetState(id=button_id, trigger_value=True)})

    def _read_until_finished(self) -> Page:
        deadline = time.monotonic() + self.timeout_s
        page = Page()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClientError(f"no finished script run within {self.timeout_s:.0f} s")
            try:
                data = self._ws.recv(timeout=left)
            except TimeoutError:
                continue
            except Exception as exc:  # websockets' ConnectionClosed and friends
                raise ClientError(f"the server closed the connection: {exc}") from exc
            if isinstance(data, str):
                raise ClientError("the server sent text, not a protobuf message")
            fwd = ForwardMsg()
            fwd.ParseFromString(data)
            kind = fwd.WhichOneof("type")
            if kind == "new_session":
                # A fresh run starts: earlier elements belong to a run that was replaced.
                page = Page()
                self.session_id = fwd.new_session.initialize.session_id or self.session_id
                self.page_script_hash = fwd.new_session.page_script_hash
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                page.elements.append(fwd.delta.new_element)
            elif kind == "script_finished":
                status = fwd.script_finished
                if status == ForwardMsg.FINISHED_SUCCESSFULLY:
                    errors = [t for t in page.texts() if "Traceback" in t]
                    if page.of_type("exception") or errors:
                        raise ClientError(f"the script raised: {page.summary()}")
                    return page
                if status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                    raise ClientError("the app's script does not compile")
                page = Page()  # finished early for a rerun: the next run draws the page
            elif kind == "session_event" and fwd.session_event.WhichOneof("type") == "script_compilation_exception":
                raise ClientError("the app's script does not compile")
