"""The main screen: hosts with their state and facts, and their containers."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from core.models import ContainerInfo, HostFacts, HostState, HostStatus, MigrationRequest
from tui.errors import operation
from tui.format import inert, inert_text, plural, size, uptime
from tui.screens.base import ReportsWorkerErrors
from tui.widgets.footer import Footer

STATE_STYLE = {HostState.UP: "green", HostState.CONNECTING: "yellow"}


def _flag(value: bool | None, yes: str, no: str) -> Text:
    if value is None:
        return Text(f"{yes} ?", style="dim")
    return Text(f"{yes} ✓", style="green") if value else Text(f"{no} ✗", style="red")


def host_line(h: HostStatus, error: str = "") -> Text:
    """One host: state, address, and the facts that decide what a migration can do."""
    t = Text()
    style = STATE_STYLE.get(h.state, "bold red")
    t.append("● " if h.state == HostState.UP else "✕ ", style=style)
    t.append(f"{h.name:<8}", style="bold")
    t.append(f" {h.address:<15} ", style="dim")
    t.append(f"{h.state.value:<12}", style=style)
    if h.state != HostState.UP:
        t.append_text(inert_text(h.reason or "no reason given", "red"))
        return t
    f: HostFacts = h.facts
    facts = [
        f"docker {f.engine_version or '?'}" + ("" if f.experimental else " (experimental off)"),
        f"criu {f.criu_version or 'missing'}",
        f"runc {f.runc_version or '?'}",
        f"kernel {f.kernel or '?'}",
        f"cgroup v{f.cgroup_version or '?'}",
    ]
    t.append(" · ".join(inert(x) for x in facts))
    t.append("\n" + " " * 39)
    t.append_text(_flag(f.dirty_tracking, "soft-dirty → pre-copy", "no soft-dirty: no pre-copy"))
    t.append("   ")
    t.append_text(_flag(f.lazy_pages, "userfaultfd (post-copy tried at preflight)", "no userfaultfd: no post-copy"))
    if error:
        t.append("   ")
        t.append_text(inert_text(error, "bold red"))
    return t


def container_key(c: ContainerInfo) -> str:
    return f"{c.host}/{c.id}"


def is_pod(c: ContainerInfo) -> bool:
    """A row for a Kubernetes pod (core/k8s/podmigration.pod_info), not a container."""
    return c.id.startswith("pod:")

class HostsScreen(ReportsWorkerErrors, Screen):
    DEFAULT_CSS = """
    HostsScreen #hosts-panel {
        height: auto; max-height: 12; border: round $primary; padding: 0 1;
    }
    HostsScreen #containers { height: 1fr; border: round $panel; }
    HostsScreen #filter { dock: bottom; display: none; }
    HostsScreen.-filtering #filter { display: block; }
    HostsScreen #status { height: 1; padding: 0 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding("j", "cursor_down", "Down", id="hosts.down", tooltip="Next container"),
        Binding("k", "cursor_up", "Up", id="hosts.up", tooltip="Previous container"),
        Binding("/", "filter", "Filter", id="hosts.filter", tooltip="Filter the containers by name, image, host, state"),
        Binding("m", "migrate", "Migrate", id="hosts.migrate", tooltip="Migrate the selected container (a dialog; nothing moves before a yes)"),
        Binding("enter", "migrate", "Migrate", show=False, id="hosts.open", tooltip="Migrate the selected container (a dialog; nothing moves before a yes)"),
        Binding("r", "refresh", "Refresh", id="hosts.refresh", tooltip="List hosts and containers again (the cursor stays on its container)"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="hosts.clear-filter", tooltip="Clear the filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.hosts: dict[str, HostStatus] = {}
        self.host_errors: dict[str, str] = {}
        self.containers: dict[str, list[ContainerInfo]] = {}
        self.pods: dict[str, list[ContainerInfo]] = {}  # by host: the pods on its node
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="hosts-panel"):
            yield Static(Text("connecting…", style="dim"), id="hosts")
        table: DataTable = DataTable(id="containers", cursor_type="row", zebra_stripes=True)
        table.border_title = "containers"
        yield table
        yield Static("", id="status")
        yield Input(placeholder="filter: name, image, host, state", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#hosts-panel").border_title = "hosts"
        table = self.query_one("#containers", DataTable)
        self._set_columns(table, project=False)
        table.focus()
        self.action_refresh()
        interval = getattr(self.app, "refresh_s", 0)
        if interval:
            self.set_interval(interval, self.action_refresh, name="hosts-refresh")

    _project_column = False

    def _set_columns(self, table: DataTable, *, project: bool) -> None:
        """The table's columns; "project" (a Compose project's name) only while a listed
        container belongs to one."""
        table.clear(columns=True)
        cols = ["host", *(["project"] if project else []), "name", "image", "state"]
        for col in (*cols, "uptime", "memory", "migratable"):
            table.add_column(col, key=col)
        self._project_column = project

    # --- data -----------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.query_one("#status", Static).update(Text("refreshing…", style="dim"))
        self.refresh_inventory()

    @work(group="inventory", exclusive=True, exit_on_error=False)
    async def refresh_inventory(self) -> None:
        backend = self.app.backend  # type: ignore[attr-defined]
        with operation("list hosts"):
            hosts = await backend.hosts()
        seen = set()
        for h in hosts:
            seen.add(h.name)
            self.hosts[h.name] = h
            if h.state != HostState.UP:
                continue
            try:
                with operation("list containers", h.name):
                    self.containers[h.name] = await backend.containers(h.name)
                self.host_errors.pop(h.name, None)
            except Exception as e:  # noqa: BLE001 - shown on the host's line
                self.host_errors[h.name] = f"containers: {getattr(e, 'cause', e)}"
        list_pods = getattr(backend, "pods", None)  # backends with clusters have it
        if list_pods is not None:
            try:
                with operation("list pods"):
                    pods = await list_pods()
            except Exception as e:  # noqa: BLE001 - shown in the status line
                pods = None
                self.notify(inert(f"pods: {getattr(e, 'cause', e)}"), severity="warning")
            if pods is not None:
                self.pods = {}
                for p in pods:
                    self.pods.setdefault(p.host, []).append(p)
        for name, h in list(self.hosts.items()):
            if name not in seen and h.state == HostState.UP:
                self.hosts[name] = HostStatus(
                    name, h.address, HostState.UNREACHABLE, "no longer reported", h.facts
                )
        self._ended_seen = getattr(self.app, "migrations_ended", 0)
        self.render_hosts()
        self.render_containers()
        clock = self.app.clock  # type: ignore[attr-defined]
        up = sum(1 for h in self.hosts.values() if h.state == HostState.UP)
        self.query_one("#status", Static).update(
            Text(
                f"{up}/{len(self.hosts)} hosts up · {plural(self.container_count(), 'container')}"
                f" · refreshed {_clock_text(clock())}",
                style="dim",
            )
        )

    _ended_seen = 0

    def on_screen_resume(self) -> None:
        """Back on the hosts: a migration that ended meanwhile changed them: list again."""
        if getattr(self.app, "migrations_ended", 0) != self._ended_seen:
            self.action_refresh()
        elif self.is_mounted and self.hosts:
            self.render_containers()  # the marks of migrations in flight

    def container_count(self) -> int:
        return sum(len(v) for v in self.containers.values())

    def worker_failed(self, worker) -> None:
        self.query_one("#status", Static).update(Text(f"refresh failed: {worker.error}", "red"))

    # --- rendering ----------------------------------------------------------------------

    def render_hosts(self) -> None:
        text = Text()
        for i, h in enumerate(self.hosts.values()):
            if i:
                text.append("\n")
            text.append_text(host_line(h, self.host_errors.get(h.name, "")))
        self.query_one("#hosts", Static).update(text)

    def visible_containers(self) -> list[ContainerInfo]:
        needle = self.filter_text.lower().strip()
        out = []
        for host in self.hosts:
            for c in [*self.containers.get(host, []), *self.pods.get(host, [])]:
                hay = f"{c.host} {c.project} {c.name} {c.image} {c.state}".lower()
                if not needle or all(w in hay for w in needle.split()):
                    out.append(c)
        return out

    def moving(self) -> dict[tuple[str, str], str]:
        """(host, container) -> target, of the migrations this console follows now."""
        from tui.screens.migration import MigrationScreen

        out = {}
        for s in self.app.screen_stack:
            if isinstance(s, MigrationScreen) and s.in_flight:
                src, dst = s.hosts_of()
                name = s.progress.started.container if s.progress.started else (
                    s.request.container if s.request else ""
                )
                out[(src, name)] = dst
        return out

    def busy(self, c: ContainerInfo) -> str:
        """Why the container is busy (in migration here, locked by another), or ""."""
        target = self.moving().get((c.host, c.name)) or self.moving().get((c.host, c.id))
        if target:
            return f"⇄ moving to {target}"
        locked = getattr(c, "locked_by", "")  # when the backend can tell (a lock's owner)
        if locked:
            return f"locked: {locked}"
        return ""

    def render_containers(self) -> None:
        table = self.query_one("#containers", DataTable)
        selected = self.selected_key()
        selected_c = self.selected_container() or self._cursor_on
        selected_row = table.cursor_row
        clock = self.app.clock  # type: ignore[attr-defined]
        now = clock()
        rows = self.visible_containers()
        if any(c.project for c in rows) != self._project_column:
            self._set_columns(table, project=not self._project_column)
        table.clear()
        for c in rows:
            host = self.hosts.get(c.host)
            # A pod's node answers through the API server, not the host's engine.
            host_up = is_pod(c) or (host is not None and host.state == HostState.UP)
            busy = self.busy(c) if host_up else ""
            if not host_up:
                mark = Text(f"✗ {c.host} is {host.state.value if host else 'gone'}", "red")
            elif busy:
                mark = inert_text(busy, "bold magenta")
            elif c.migratable:
                mark = Text("✓", style="green")
            else:
                mark = inert_text(f"✗ {c.why_not or 'not migratable'}", "yellow")
            state_style = "green" if c.state == "running" else "dim"
            project = [inert_text(c.project or "—", "" if c.project else "dim")]
            table.add_row(
                Text(c.host, style="cyan" if host_up else "red"),
                *(project if self._project_column else []),
                inert_text(c.name, "bold" if host_up else "dim"),
                inert_text(c.image),
                Text(c.state if host_up else f"{c.state}?", style=state_style),
                uptime(c.started_at, now) if c.state == "running" else "—",
                size(c.memory_bytes),
                mark,
                key=container_key(c),
            )
        # The cursor stays on the same container: by its id, else by its name (moved to
        # another host, it has a new id), else on the same row.
        row = None
        if selected is not None and table.is_valid_row_index(0):
            keys = [container_key(c) for c in self.visible_containers()]
            if selected in keys:
                row = keys.index(selected)
            elif selected_c is not None:
                names = [c.name for c in self.visible_containers()]
                if selected_c.name in names:
                    row = names.index(selected_c.name)
        if row is None and table.row_count:
            row = min(selected_row, table.row_count - 1)
        if row is not None:
            table.move_cursor(row=row, animate=False)
        table.border_subtitle = f"filter: {self.filter_text}" if self.filter_text else ""

    def selected_key(self) -> str | None:
        table = self.query_one("#containers", DataTable)
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001
            return None
        return key.value

    def selected_container(self) -> ContainerInfo | None:
        key = self.selected_key()
        for cs in [*self.containers.values(), *self.pods.values()]:
            for c in cs:
                if container_key(c) == key:
                    return c
        return None

    # --- actions ------------------------------------------------------------------------

    def action_cursor_down(self) -> None:
        self.query_one("#containers", DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#containers", DataTable).action_cursor_up()

    def action_filter(self) -> None:
        self.add_class("-filtering")
        box = self.query_one("#filter", Input)
        box.value = self.filter_text
        box.focus()

    def action_clear_filter(self) -> None:
        self.filter_text = ""
        self.query_one("#filter", Input).value = ""
        self.remove_class("-filtering")
        self.query_one("#containers", DataTable).focus()
        self.render_containers()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.render_containers()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not self.filter_text:
            self.remove_class("-filtering")
        self.query_one("#containers", DataTable).focus()

    _cursor_on: ContainerInfo | None = None  # the container under the cursor, as last seen

    @on(DataTable.RowHighlighted, "#containers")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        c = self.selected_container()
        if c is not None:
            self._cursor_on = c

    @on(DataTable.RowSelected, "#containers")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_migrate()

    def action_migrate(self) -> None:
        c = self.selected_container()
        if c is None:
            self.notify("No container selected", severity="warning")
            return
        if is_pod(c):
            self.open_pod_dialog(c)
            return
        host = self.hosts.get(c.host)
        if host is None or host.state != HostState.UP:
            self.notify(f"{c.host} is not reachable", severity="error")
            return
        if not c.migratable:
            self.notify(
                inert(f"{c.name} cannot move: {c.why_not}"), severity="warning", markup=False
            )
            return
        busy = self.busy(c)
        if busy:
            self.notify(inert(f"{c.name}: {busy}"), severity="warning", markup=False)
            return
        self.open_dialog(c)

    def open_pod_dialog(self, c: ContainerInfo) -> None:
        """A pod: the other nodes of its cluster, and a yes (tui/screens/pod_dialog.py)."""
        from tui.screens.pod_dialog import PodMoveDialog

        if not c.migratable:
            self.notify(inert(f"{c.name}: {c.why_not}"), severity="warning", markup=False)
            return
        busy = self.busy(c)
        if busy:
            self.notify(inert(f"{c.name}: {busy}"), severity="warning", markup=False)
            return
        targets_of = getattr(self.app.backend, "pod_targets", None)  # type: ignore[attr-defined]
        try:
            targets = targets_of(c) if targets_of is not None else []
        except (ValueError, KeyError) as e:  # a cluster the hosts file lost: ConfigError
            targets = []
            self.notify(inert(f"{c.name}: {e}"), severity="error", markup=False)
        if not targets:
            self.notify(
                inert(f"{c.name}: its cluster has no other node to move it to"),
                severity="warning",
                markup=False,
            )
            return

        def chosen(request: MigrationRequest | None) -> None:
            if request is not None:
                self.app.start_migration(request)  # type: ignore[attr-defined]

        self.app.push_screen(PodMoveDialog(c, targets), chosen)

    def open_dialog(self, c: ContainerInfo, target: str | None = None) -> None:
        from tui.screens.migrate_dialog import MigrateDialog

        def chosen(request: MigrationRequest | None) -> None:
            if request is not None:
                self.app.start_migration(request)  # type: ignore[attr-defined]

        self.app.push_screen(MigrateDialog(c, list(self.hosts.values()), target=target), chosen)

    def migrate_container(self, host: str, container_id: str, target: str) -> None:
        """The palette's "migrate X → H": select X, and its dialog with H chosen."""
        keys = [container_key(c) for c in self.visible_containers()]
        key = f"{host}/{container_id}"
        if key not in keys and self.filter_text:
            self.action_clear_filter()
            keys = [container_key(c) for c in self.visible_containers()]
        if key in keys:
            self.query_one("#containers", DataTable).move_cursor(row=keys.index(key))
        c = next((c for c in self.containers.get(host, []) if c.id == container_id), None)
        if c is None:
            self.notify("That container is no longer listed", severity="warning")
            return
        busy = self.busy(c)
        if busy:
            self.notify(inert(f"{c.name}: {busy}"), severity="warning", markup=False)
            return
        self.open_dialog(c, target)


def _clock_text(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%H:%M:%S UTC")
