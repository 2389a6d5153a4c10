"""The game's Streamlit server with request timing, as the load test starts it:

    python -m geoai.bench.serve_server TIMING.jsonl [streamlit run options...]

Runs `streamlit run app/main.py` in this process after wrapping two methods of Streamlit's
AppSession, so every script-run request is timed where the server sees it: from the moment
its websocket message is handled to the moment the run that answers it (after any
st.rerun()) finishes. One JSON line per request: session id, the widgets it triggered
(button presses), and the seconds it took. The app itself is unchanged.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from geoai import settings


def install_timing(log_path: Path) -> None:
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.runtime.app_session import AppSession

    lock = threading.Lock()
    pending: dict[str, tuple[float, list[str]]] = {}
    log = log_path.open("a", buffering=1)
    handle_backmsg, enqueue = AppSession.handle_backmsg, AppSession._enqueue_forward_msg

    def timed_handle_backmsg(self, msg):
        if msg.WhichOneof("type") == "rerun_script":
            widgets = msg.rerun_script.widget_states.widgets
            triggers = [w.id for w in widgets if w.trigger_value or w.json_trigger_value]
            with lock:
                pending[self.id] = (time.perf_counter(), triggers)
        return handle_backmsg(self, msg)

    def timed_enqueue(self, msg):
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished in (
                ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR):
            with lock:
                started = pending.pop(self.id, None)
                if started is not None:
                    record = {"session": self.id, "triggers": started[1],
                              "seconds": round(time.perf_counter() - started[0], 6)}
                    log.write(json.dumps(record) + "\n")
        return enqueue(self, msg)

    AppSession.handle_backmsg = timed_handle_backmsg
    AppSession._enqueue_forward_msg = timed_enqueue


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m geoai.bench.serve_server TIMING.jsonl [streamlit options]", file=sys.stderr)
        return 2
    install_timing(Path(argv[0]))
    from streamlit.web import cli
    sys.argv = ["streamlit", "run", str(settings.REPO_ROOT / "app" / "main.py"), *argv[1:]]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
