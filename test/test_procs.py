"""bench/procs.py: the ports and child processes of the bench and the rostest checkers."""

import subprocess
import sys
import time

from bench.procs import ProcessOutput, free_port


def test_free_port_is_a_usable_port():
    assert 1024 <= free_port() <= 65535


def test_process_output_reads_the_lines_as_they_come_and_stop_is_ctrl_c():
    # The child's own Ctrl-C handler: a shell's background job inherits SIGINT ignored.
    code = ("import signal, sys, time\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "print('ready', flush=True)\ntry:\n    time.sleep(60)\n"
            "except KeyboardInterrupt:\n    print('interrupted', flush=True)\n")
    output = ProcessOutput(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True))
    deadline = time.monotonic() + 20
    while "ready\n" not in output.lines and time.monotonic() < deadline:
        time.sleep(0.05)
    assert output.lines == ["ready\n"]
    assert output.stop(timeout=10) == "ready\ninterrupted\n"
    assert output.popen.returncode == 0
    assert output.stop() == "ready\ninterrupted\n"  # once stopped, stop() only answers
