"""Moving a Kubernetes pod from the console: which node it goes to, and a yes.

A pod move has no strategy to choose (containerd freezes the pod, the kubelet checkpoints
it: core/k8s/podmigration.py); the dialog names the target node's host and what happens,
and dismisses with the request the live view follows, or None.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, OptionList, Static
from textual.widgets.option_list import Option

from core.models import ContainerInfo, MigrationRequest
from tui.format import inert

WHAT_HAPPENS = (
    "containerd freezes the pod on its node, the kubelet checkpoints each container, the "
    "checkpoint goes to the target node, and the pod is restored there, bound to that node, "
    "with its emptyDir volumes; the source pod is deleted only once the restored one is "
    "Ready. Any failure before that (or `a` in the live view) rolls back: the pod runs on "
    "its node again."
)


class PodMoveDialog(ModalScreen[MigrationRequest | None]):
    DEFAULT_CSS = """
    PodMoveDialog { align: center middle; }
    PodMoveDialog > #pod-move {
        width: 90; max-width: 100%; height: auto; max-height: 100%; padding: 1 2;
        border: thick $accent; background: $surface;
    }
    PodMoveDialog #pod-title { text-style: bold; margin-bottom: 1; }
    PodMoveDialog #pod-targets { height: auto; max-height: 8; margin: 1 0; }
    PodMoveDialog #pod-move-go { margin-top: 1; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Back", id="pod.back", tooltip="Close without moving"),
    ]

    def __init__(self, pod: ContainerInfo, targets: list[str]) -> None:
        super().__init__()
        self.pod = pod
        self.targets = targets

    def compose(self) -> ComposeResult:
        with Vertical(id="pod-move"):
            yield Static(inert(f"Move pod {self.pod.name} from {self.pod.host}"), id="pod-title")
            yield Static(WHAT_HAPPENS, id="pod-what")
            yield OptionList(
                *(Option(inert(f"to {t}"), id=t) for t in self.targets), id="pod-targets"
            )
            yield Button("Move (Enter)", id="pod-move-go", variant="primary")

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ol.highlighted = 0
        ol.focus()

    def _chosen(self) -> str | None:
        ol = self.query_one(OptionList)
        if ol.highlighted is None:
            return None
        return self.targets[ol.highlighted]

    def _go(self) -> None:
        target = self._chosen()
        if target is None:
            return
        self.dismiss(
            MigrationRequest(
                container=self.pod.id,
                source=self.pod.host,
                target=target,
                strategy="stop-and-copy",
                downtime_budget_s=0.0,
            )
        )

    @on(OptionList.OptionSelected, "#pod-targets")
    def _selected(self, _event: OptionList.OptionSelected) -> None:
        self._go()

    @on(Button.Pressed, "#pod-move-go")
    def _pressed(self, _event: Button.Pressed) -> None:
        self._go()

    def action_cancel(self) -> None:
        self.dismiss(None)
