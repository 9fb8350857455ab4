"""PostgreSQL on the VM lab: the VM lab's fixtures (tests/lab_vm/conftest.py).

Not in the default run (pyproject's norecursedirs): importing the 432 MiB application
image into two emulated guests takes over ten minutes. Run it by name:
`sudo .venv/bin/pytest tests/lab_vm_apps`.
"""

from tests.lab_vm.conftest import *  # noqa: F403 - the fixtures
