"""The fault matrix's pre-copy and lazy-phase rows, on the VM lab: the VM lab's fixtures
(tests/lab_vm/conftest.py).

Not in the default run (pyproject's norecursedirs): the nine rows take about half an
hour in the emulated guests, and CI runs the namespace rows. Run every row with one
command: `sudo .venv/bin/python -m pytest tests/lab/test_fault_matrix.py tests/lab/test_fault_between.py tests/lab_vm_faults`.
"""

from tests.lab_vm.conftest import *  # noqa: F403 - the fixtures
