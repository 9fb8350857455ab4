"""What every console screen shares: worker errors go to the app's single handler."""

from __future__ import annotations

from textual.worker import Worker, WorkerState


class ReportsWorkerErrors:
    """Mix into a Screen: a worker that ends in error is reported by the app, once."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.app.report_worker_error(event.worker)  # type: ignore[attr-defined]
            self.worker_failed(event.worker)

    def worker_failed(self, worker: Worker) -> None:
        """Override to show the failure in the screen too."""
