"""Run curves and the too-strong-discriminator alarm."""

from __future__ import annotations

import json

from gad.training.plots import health_warnings, plot_run


def _records(acc: float, n: int = 30):
    warm = [{"step": i, "stage": "warmup", "loss": 5.0 - i / 10, "disc_accuracy": 0.6} for i in range(1, 6)]
    adv = [{"step": 5 + i, "stage": "adversarial", "loss": 0.01, "disc_accuracy": acc, "reward_mean": 0.1,
            "kl": 1e-4 * i} for i in range(1, n + 1)]
    return warm + adv


def test_alarm_fires_only_when_the_discriminator_wins_too_easily():
    assert health_warnings(_records(0.98)) and "wins too easily" in health_warnings(_records(0.98))[0]
    assert health_warnings(_records(0.80)) == []
    assert health_warnings(_records(0.99, n=5)) == []  # too few adversarial steps to judge


def test_plot_writes_a_png(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records(0.9)))
    out = plot_run(tmp_path)
    assert out == tmp_path / "curves.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert plot_run(tmp_path / "empty") is None


def test_resume_truncation_drops_later_records_and_a_line_cut_by_a_kill(tmp_path):
    from gad.training.progress import JsonlProgress

    p = JsonlProgress(tmp_path)
    for step in range(1, 6):
        p.metrics({"step": step, "stage": "warmup", "loss": 1.0})
    with p.metrics_path.open("a") as fh:
        fh.write('{"step": 6, "stage": "warm')       # the process died mid-write
    p.truncate_after(3)
    steps = [json.loads(line)["step"] for line in p.metrics_path.read_text().splitlines()]
    assert steps == [1, 2, 3]
