"""pipeline.train_figures.loss_figure: what the loss curves show for short and long runs."""
from __future__ import annotations

from pipeline.train_figures import loss_curves, loss_figure, loss_series

HEADER = "epoch,step,train/loss_epoch,train/loss_step,val/loss,val/mae,val/mse\n"


def _csv(tmp_path, rows: list[str]):
    p = tmp_path / "metrics.csv"
    p.write_text(HEADER + "".join(r + "\n" for r in rows))
    return p


def _train_panel(fig):
    return fig.axes[0]


def test_a_run_shorter_than_its_logging_interval_shows_its_epoch_losses(tmp_path):
    """Two 2-step epochs, logging every 5 steps: no per-step loss, but each epoch's. The panel was
    blank (epoch losses were always left out)."""
    p = _csv(tmp_path, ["0,1,,,0.30,0.40,0.30", "0,1,0.50,,,,", "1,3,,,0.20,0.30,0.20", "1,3,0.25,,,,"])
    assert loss_series(p)["train/loss_epoch"] == [(1.0, 0.5), (3.0, 0.25)]
    (line,) = _train_panel(loss_figure(p)).get_lines()
    assert line.get_label() == "train/loss_epoch" and list(line.get_ydata()) == [0.5, 0.25]
    assert loss_curves(p, tmp_path / "loss.png").stat().st_size > 1000


def test_per_step_losses_replace_the_epoch_ones(tmp_path):
    p = _csv(tmp_path, ["0,4,,0.9,,,", "0,9,,0.7,,,", "0,9,0.8,,0.5,0.6,0.5"])
    assert set(loss_series(p)) == {"train/loss_step", "val/loss", "val/mae", "val/mse"}
    (line,) = _train_panel(loss_figure(p)).get_lines()
    assert line.get_label() == "train/loss_step" and list(line.get_xdata()) == [4.0, 9.0]


def test_no_training_loss_is_said_not_left_blank(tmp_path):
    fig = loss_figure(_csv(tmp_path, ["0,1,,,0.3,0.4,0.3"]))
    panel = _train_panel(fig)
    assert not panel.get_lines() and "no training loss logged" in " ".join(t.get_text() for t in panel.texts)
    # equal validation series (val/loss = val/mse under an L2 loss): the first drawn larger, beneath
    lines = {ln.get_label(): ln for ln in fig.axes[1].get_lines()}
    assert lines["val/loss"].get_markersize() > lines["val/mse"].get_markersize()
    assert lines["val/loss"].get_zorder() < lines["val/mse"].get_zorder()


def test_no_log_no_figure(tmp_path):
    assert loss_figure(tmp_path / "missing.csv") is None and loss_curves(tmp_path / "m.csv", tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()
