"""`python -m geoai.bench insight` runs end to end (miniature models) and reports per photo."""
from __future__ import annotations

import json

from geoai.bench.__main__ import main
from tiny_models import tiny_model_env  # noqa: F401 - fixture


def test_insight_benchmark_reports_seconds_per_photo(shared_data, capsys, tiny_model_env):
    code = main(["insight", "--tiny", "--photos", "2", "--data", str(shared_data / "croatia-streetview")])
    assert code == 0
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["kind"] == "tiny random-weight models"
    assert [r["method"] for r in report["results"]] == ["attention-rollout", "grad-cam"]
    for result in report["results"]:
        assert result["photos"] == 2
        assert 0 < result["looked_s"]["p50"] <= result["looked_s"]["max"]
        assert 0 < result["belief_s"]["max"]


def test_insight_benchmark_says_how_to_get_the_backbones(shared_data, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GEOAI_CHECKPOINTS", str(tmp_path / "none"))
    code = main(["insight", "--photos", "1", "--backbones", "no-such-backbone",
                 "--data", str(shared_data / "croatia-streetview")])
    err = capsys.readouterr().err
    assert code == 2 and "--tiny" in err and "Traceback" not in err
