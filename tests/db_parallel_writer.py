"""One writer process for the parallel-save tests (run by tests/test_db_store.py).

    python tests/db_parallel_writer.py URL PROCESS_INDEX THREADS GAMES_PER_THREAD GO_FILE

Waits until GO_FILE exists (so every process hits the empty database at once), saves its
games from THREADS threads with its own GameStore, and prints one JSON line:
{"ids": [...], "errors": [...]}.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from db import GameStore  # noqa: E402
from db_backends import game_record  # noqa: E402

START_WAIT_S = 60


def main(url: str, index: int, threads_n: int, games_each: int, go_file: str) -> None:
    store = GameStore(url)  # no query yet: the schema is created by whoever gets there first
    ids, errors = [], []
    lock = threading.Lock()
    deadline = time.monotonic() + START_WAIT_S
    while not Path(go_file).exists() and time.monotonic() < deadline:
        time.sleep(0.005)

    def play(t: int) -> None:
        for j in range(games_each):
            # Every other thread of every process uses one brand-new shared name (a race on the
            # player row); the others a name of their own.
            name = "Shared" if t % 2 else f"Player {index}-{t}"
            try:
                game_id = store.save_game(game_record(name, person_km=(index + t, j)))
            except Exception as exc:  # noqa: BLE001 - reported to the test
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
            else:
                with lock:
                    ids.append(game_id)

    threads = [threading.Thread(target=play, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.dispose()
    print(json.dumps({"ids": ids, "errors": errors}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
