#!/usr/bin/env python3
"""`make bench` and `make soak`: measured figures of the shipped detector, in one run each.

  python -m bench.run_bench bench [--cycles 200] [--train]   -> bench/results.json
  python -m bench.run_bench soak  [--cycles 1000]            -> bench/soak.json
(from the repository root: bench/ is a namespace package there)

Both print a Markdown table and rewrite the README's "Performance" section (bench/report.py).
Every comparison is a ratio of figures measured in the same run. A missed goal is reported, not
an error: `bench` exits 0 whenever it could measure. `soak` exits 1 only when a cycle hung, the
detector died or stopped serving after a drill (wrong labels are counted, not fatal).

The ROS part runs on its own roscore (a free port), with detect.launch as shipped, the
simulated camera (scripts/sim_camera) and a bench controller that plays the arm as fast as the
detector lets it (bench/rosharness.py); every process started is stopped at the end.
`bench` also times the peer detectors of bench/peers.py (built once into bench/peer_models/,
gitignored; `--no-peers` skips them) on the same frames as our model, in the same process.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import rospy

from bench import report
from bench.report import machine_info
from bench.rosharness import (
    BenchController,
    Cycle,
    RosGraph,
    first_line_matching,
    log,
    master_getparam_cost,
    master_push_latency,
    median,
    node_pid,
    percentiles,
    proc_status_kb,
    summarize_cycles,
)
from cube_detect.paramstore import ProtocolNames
from cube_detect.ros.settings import DetectorSettings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

MODEL = (ROOT / "models" / "cube_detect.tflite").resolve()
CAMERA_SEED = 4242
#: The safety-net rates the cycle is also timed at (besides detect.launch's default): 1 Hz, where
#: the master's push alone serves /takeImage, and 50 Hz, what the 40 ms goal would take.
SWEEP_RATES = (1.0, 50.0)
PAUSES = np.random.default_rng(7)  # the arm's pause before each request


# ----------------------------------------------------------------------------- common
def header(command: str) -> dict:
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": command, "machine": machine_info(),
            "load_avg": {"start": [round(x, 2) for x in os.getloadavg()]}}


def node_model(proc, timeout: float = 5.0) -> Optional[str]:
    """The model a started detector says it loaded (its "detector: model PATH, backend ..." line)."""
    deadline = time.monotonic() + timeout
    while True:
        match = re.search(r"detector: model (.+?), backend ", proc.output())
        if match or time.monotonic() > deadline:
            return match.group(1) if match else None
        time.sleep(0.1)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def init_rospy() -> None:
    if not rospy.core.is_initialized():  # a rostest's test node has already done it
        rospy.init_node("bench", anonymous=True, disable_signals=True)


def progress(iterable, **kwargs):
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stderr, mininterval=1.0, dynamic_ncols=True, **kwargs)


def start_detector(graph: RosGraph, ctrl: BenchController, name: str = "detect", timeout: float = 90.0, **args):
    """roslaunch detect.launch; (process, seconds from spawn to ~ready true)."""
    with ctrl.cond:
        ctrl.ready_at = None
    proc = graph.launch(name, "detect.launch", **args)
    ready_at = ctrl.wait_ready(timeout)
    if ready_at is None:
        raise RuntimeError(f"the detector did not report ready within {timeout:g} s:\n{proc.output()[-3000:]}")
    return proc, ready_at - proc.spawned


def run_cycles(ctrl: BenchController, count: int, pid: Optional[int], desc: str, rss: Optional[list] = None,
               show: bool = True) -> List[Cycle]:
    """``count`` protocol cycles in a row; VmRSS (kB) of ``pid`` after each into ``rss``.

    Bounded: stops early when the detector process is gone or 5 cycles in a row hung.

    Before each request the arm pauses a random 0-100 ms (seeded): a request at a random phase
    of the detector's 20 Hz safety-net poll and of the master's notification threads (which look
    for work every 0.1 s), not always just after one of them.
    """
    cycles: List[Cycle] = []
    from_idle = True
    for _ in progress(range(count), desc=desc, unit="cycle", disable=not show):
        cycle = ctrl.run_cycle(from_idle=from_idle, pause=float(PAUSES.uniform(0.0, 0.1)))
        cycles.append(cycle)
        if rss is not None and pid:
            rss.append(proc_status_kb(pid, "VmRSS"))
        # After a hung cycle, a new takeImage is what a controller would do: it preempts.
        from_idle = cycle.status != "timeout"
        if pid and proc_status_kb(pid, "VmRSS") is None:
            log(f"{desc}: the detector (pid {pid}) exited after {len(cycles)} cycles")
            break
        if len(cycles) >= 5 and all(c.status == "timeout" for c in cycles[-5:]):
            log(f"{desc}: 5 cycles in a row hung; stopping after {len(cycles)} cycles")
            break
    return cycles


# ----------------------------------------------------------------------------- make bench
def measure_latency(model: Path, iterations: int, peers: bool = False) -> dict:
    """bench/latency_job.py's figures (``-m bench.latency_job`` from the repository root); ``peers``:
    with the peer detectors (bench/peers.py)."""
    args = [sys.executable, "-m", "bench.latency_job", str(model), "--iterations", str(iterations)]
    args += ["--peers"] if peers else []
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_ros(cycles: int, ready_runs: int, log_dir: Path, running_master: bool = False,
                sweep_cycles: int = 100, model: Path = MODEL) -> dict:
    """The node's figures (ready time, timed cycles, memory, the rate sweep) with ``model`` (made
    absolute here: the node would resolve a relative one against the folder roslaunch runs in);
    ``node_models``: the model each started detector said it loaded."""
    model = Path(model).resolve()
    out: dict = {"node_models": []}
    graph = RosGraph(log_dir, use_existing_master=running_master)
    try:
        init_rospy()
        graph.camera(seed=CAMERA_SEED)
        ctrl = BenchController()
        ctrl.reset_parameters()
        rospy.wait_for_service("/get_image", timeout=60)
        ready, node_start = [], []
        proc = None
        for run in range(ready_runs):
            if proc is not None:
                proc.stop()
            proc, seconds = start_detector(graph, ctrl, name=f"detect{run}", model=model)
            out["node_models"].append(report.repo_path(node_model(proc)))
            ready.append(round(seconds, 3))
            pid = node_pid("/detector")
            node_start.append(process_start_after(pid, proc))
            log(f"ready: detect.launch spawned -> /detector/ready in {seconds:.2f} s (run {run + 1}/{ready_runs})")
        out["ready_s"] = round(median(ready), 3)
        out["ready_s_runs"] = ready
        out["ready_breakdown_s"] = {"roslaunch_to_node_process": node_start,
                                    "note": "spawn of roslaunch -> spawn of the node process (roslaunch's own start)"}
        pid = node_pid("/detector")
        run_cycles(ctrl, 5, pid, "warm-up", show=False)
        rss: list = []
        done = run_cycles(ctrl, cycles, pid, "bench cycles", rss)
        summary = summarize_cycles(done)
        out["cycle_ms"] = summary["cycle_ms"]
        out["protocol_cycle_ms"] = summary["protocol_ms"]
        out["cycle_breakdown_ms"] = {"seen": percentiles([c.seen_ms for c in done]),
                                     "camera": percentiles([c.camera_ms for c in done]),
                                     "inference": percentiles([c.inference_ms for c in done])}
        out["detector_rate_hz"] = DetectorSettings().rate  # detect.launch's default: the safety-net poll
        out["cubes_per_cycle"] = round(sum(len(c.faces) for c in done) / max(len(done), 1), 2)
        out["cycles"] = {k: summary[k] for k in ("cycles", "completed", "correct", "wrong", "camera_errors")}
        out["master_push_ms"] = master_push_latency()
        log(f"the master's push (setParam -> paramUpdate): p50 {out['master_push_ms'].get('p50')} ms, "
            f"p95 {out['master_push_ms'].get('p95')} ms")
        out["master_getparam"] = master_getparam_cost()
        cpu_us = out["master_getparam"]["master_cpu_us"]
        log(f"one getParam (a poll): {out['master_getparam']['wall_us']:.0f} us at the caller, "
            + ("the master's CPU not measured (not a local rosmaster)" if cpu_us is None
               else f"{cpu_us:.0f} us of the master's CPU"))
        hwm = proc_status_kb(pid, "VmHWM")
        out["node_peak_rss_mb"] = round(hwm / 1024, 1) if hwm else None
        out["node_rss_mb_end"] = round(rss[-1] / 1024, 1) if rss and rss[-1] else None
        log(f"cycles: {summary['completed']}/{len(done)} completed, {summary['correct']} right; "
            f"takeImage -> faces p50 {out['cycle_ms'].get('p50')} ms, p95 {out['cycle_ms'].get('p95')} ms; "
            f"node peak RSS {out['node_peak_rss_mb']} MB")
        by_rate = {f"{out['detector_rate_hz']:g}": {"cycle": out["cycle_ms"],
                                                     "seen": out["cycle_breakdown_ms"]["seen"]}}
        for rate in SWEEP_RATES:
            if proc is not None:
                proc.stop()
            proc, _ = start_detector(graph, ctrl, name=f"detect_rate{rate:g}", rate=rate, model=model)
            out["node_models"].append(report.repo_path(node_model(proc)))
            pid = node_pid("/detector")
            run_cycles(ctrl, 3, pid, "warm-up", show=False)
            swept = run_cycles(ctrl, sweep_cycles, pid, f"cycles at rate {rate:g} Hz", show=False)
            by_rate[f"{rate:g}"] = {"cycle": percentiles([c.cycle_ms for c in swept]),
                                    "seen": percentiles([c.seen_ms for c in swept])}
            log(f"rate {rate:g} Hz: takeImage -> faces p50 {by_rate[f'{rate:g}']['cycle'].get('p50')} ms, "
                f"p95 {by_rate[f'{rate:g}']['cycle'].get('p95')} ms")
        out["cycle_ms_by_rate"] = by_rate
        ctrl.close()
    finally:
        shutdown(graph)
    return out


def process_start_after(pid: int, proc) -> Optional[float]:
    """Seconds from ``proc``'s spawn to the start of process ``pid`` (both on the boot clock)."""
    try:
        start_ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        return round(start_ticks / os.sysconf("SC_CLK_TCK") - proc.spawned, 3)
    except (OSError, ValueError, IndexError):
        return None


def shutdown(graph: RosGraph) -> None:
    """Stop what the run started; rospy too, unless the master was someone else's (rostest)."""
    if not graph.external_master:
        try:
            if rospy.core.is_initialized():
                rospy.signal_shutdown("bench done")
        except Exception:  # shutting down anyway: graph.close() stops the processes
            pass
    graph.close()


def measure_training(log_dir: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="cube_detect_bench_train_"))
    args = [sys.executable, "-m", "cube_detect", "train", "--synthetic", "6000", "--minutes", "9",
            "--out", str(work / "model"), "--workdir", str(work / "run")]
    log(f"train: {' '.join(args[1:])} (9 min budget; log {log_dir / 'train.log'})")
    started = time.monotonic()
    with open(log_dir / "train.log", "w") as handle:
        code = subprocess.call(args, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    state_path = work / "run" / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    result = {"command": "python -m cube_detect " + " ".join(args[3:]), "exit_status": code,
              "wall_minutes": round((time.monotonic() - started) / 60, 2),
              "minutes_to_mAP50_0.95": (round(state["reached_095_s"] / 60, 2) if "reached_095_s" in state else None),
              "val_mAP50": state.get("best_mAP50"), "train_minutes": round(state.get("elapsed_s", 0) / 60, 2),
              "workdir": str(work)}
    log(f"train: minutes to mAP@0.5 >= 0.95: {result['minutes_to_mAP50_0.95']}, best {result['val_mAP50']}")
    return result


def previous_training(path: Path) -> dict:
    """{"train": ...} of an earlier `make bench TRAIN=1` in ``path``, marked carried over; or {}."""
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    train = previous.get("train")
    if not train:
        return {}
    train.setdefault("date", previous.get("date", "?"))
    return {"train": dict(train, carried_over=True)}


def cmd_bench(args) -> int:
    model = Path(args.model).resolve()
    results = header(("make bench" + (" TRAIN=1" if args.train else "")) if model == MODEL else
                     "python -m bench.run_bench bench" + (" --train" if args.train else "") + f" --model {args.model}")
    results.update(report.model_fields(model))
    log(f"model {results['model']}: {results['model_bytes']:,} bytes; load average {os.getloadavg()[0]:.2f}")

    log(f"latency: int8 TFLite vs float TFLite vs float TF, 1 thread, {args.iterations} frames each"
        + ("" if args.no_peers else f"; peers {', '.join(report.PEERS)} (built once into bench/peer_models/)"))
    lat = measure_latency(model, args.iterations, peers=not args.no_peers)
    notes = lat.pop("notes", [])
    results["latency_ms"] = lat
    int8, ftf, ftfl = (report.get(lat, k) for k in ("int8_cpu.p50", "float_tf.p50", "float_tflite.p50"))
    # The float figures are the detector alone: so is the int8 figure they are compared with.
    alone = report.get(lat, "int8_cpu_without_reader.p50") or int8
    results["speedup_int8_vs_float_tf"] = round(ftf / alone, 3) if alone and ftf else None
    results["speedup_int8_vs_float_tflite"] = round(ftfl / alone, 3) if alone and ftfl else None
    results["peer_speedup"] = {peer: round(report.get(lat, f"{peer}.p50") / int8, 2)
                               for peer in report.PEERS if int8 and report.get(lat, f"{peer}.p50")}
    log(f"latency p50: int8 {int8} ms, float TFLite {ftfl} ms, float TF {ftf} ms "
        f"(int8 on tf.lite.Interpreter {report.get(lat, 'int8_tf_interpreter.p50')} ms); "
        + ", ".join(f"{peer} {report.get(lat, f'{peer}.p50')} ms" for peer in report.PEERS))

    with tempfile.TemporaryDirectory(prefix="cube_detect_bench_") as tmp:
        log(f"ROS: roscore on a free port, sim_camera, detect.launch x{args.ready_runs}, {args.cycles} cycles "
            f"(logs in {tmp} while it runs)")
        results.update(measure_ros(args.cycles, args.ready_runs, Path(tmp), args.use_running_master,
                                   sweep_cycles=max(args.cycles // 2, 10), model=model))
        results["load_avg"]["end"] = [round(x, 2) for x in os.getloadavg()]  # before our own training
        if args.train:
            results["train"] = dict(measure_training(Path(tmp)), date=results["date"])
        else:  # keep the last TRAIN=1 figure (9 minutes to measure), marked as such
            results.update(previous_training(args.out))
    if results["load_avg"]["start"][0] > (os.cpu_count() or 1) * 0.5:
        notes.append(f"the machine was busy (1-min load average {results['load_avg']['start'][0]:.1f} at start, "
                     f"{results['load_avg']['end'][0]:.1f} at end, {os.cpu_count()} cores): latencies are pessimistic")
    if set(results["node_models"]) != {report.repo_path(model)}:
        notes.append(f"the node's cycles did not all run {report.repo_path(model)}: "
                     f"the detectors said {results['node_models']}")
    results["notes"] = notes
    results["goals"] = report.goals(results)
    write_json(args.out, results)
    log(f"wrote {args.out}")
    print(report.bench_table(results))
    if not args.no_readme:
        report.update_readme()
    return 0


# ----------------------------------------------------------------------------- make soak
def cycles_served(cycles: List[Cycle]) -> int:
    return sum(c.completed for c in cycles)


def drill_camera_killed(graph: RosGraph, ctrl: BenchController, camera, outage_s: float, after: int) -> dict:
    """Kill the camera (SIGKILL) while cycles run back to back, restart it after ``outage_s``."""
    cycles: List[Cycle] = []
    stop = threading.Event()

    def loop():
        from_idle = True
        while not stop.is_set():
            cycle = ctrl.run_cycle(timeout=30, from_idle=from_idle)
            cycles.append(cycle)
            from_idle = cycle.status != "timeout"

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    time.sleep(0.7)  # a few cycles in flight; the kill lands wherever the detector is
    killed_at = time.monotonic()
    camera.kill(signal.SIGKILL)
    camera.popen.wait(timeout=10)
    time.sleep(outage_s)
    restarted_at = time.monotonic()
    camera = graph.camera(seed=CAMERA_SEED)
    rospy.wait_for_service("/get_image", timeout=60)
    service_at = time.monotonic()
    ok_after = ctrl.wait(lambda: sum(c.completed and c.started >= service_at for c in cycles) >= after, 60)
    stop.set()
    worker.join(timeout=40)
    # When each completed cycle's labels arrived; the first after the restart is the recovery.
    answered = [c.started + c.cycle_ms / 1e3 for c in cycles if c.completed and c.cycle_ms is not None]
    recovery = next((t - restarted_at for t in answered if t >= restarted_at), None)
    lost = sum(not c.completed for c in cycles)
    in_outage = [c for c in cycles if killed_at <= c.started < service_at]
    return {
        "name": "camera node killed (SIGKILL) mid-run, restarted after "
                f"{outage_s:g} s", "served": cycles_served(cycles), "lost": lost,
        "recovery_s": None if recovery is None else round(recovery, 3),
        "camera_service_back_s": round(service_at - restarted_at, 3),
        "cycles_started_during_outage": len(in_outage),
        "statuses": [c.status for c in cycles],
        "ok": bool(ok_after) and not any(c.status == "timeout" for c in cycles),
        "summary": (f"{lost} cycle(s) ended with `/label` 0 (camera error after the retries), none hung; "
                    f"first labels {recovery:.2f} s after the camera was restarted" if recovery is not None
                    else "the detector did not serve again after the camera came back"),
        "camera": camera,
    }


def drill_slow_camera(ctrl: BenchController, delay: float, count: int) -> dict:
    rospy.set_param("/sim_camera/delay", delay)
    try:
        slow = [ctrl.run_cycle(timeout=delay * 4 + 15) for _ in range(count)]
    finally:
        rospy.set_param("/sim_camera/delay", 0.0)
    # The next cycle is the recovery: a normal one again.
    back = ctrl.run_cycle()
    served = cycles_served(slow)
    slow_ms = percentiles([c.cycle_ms for c in slow])
    return {
        "name": f"camera answering in {delay:g} s (`~delay`; camera_timeout 5 s)",
        "served": served + back.completed, "lost": sum(not c.completed for c in slow) + (not back.completed),
        "recovery_s": None if back.cycle_ms is None else round(back.cycle_ms / 1e3, 3),
        "slow_cycle_ms": slow_ms, "ok": served == count and back.completed,
        "summary": (f"every cycle served, takeImage → labels {slow_ms.get('p50', 0) / 1e3:.2f} s while slow; "
                    f"next cycle normal ({back.cycle_ms or 0:.0f} ms)"),
    }


def drill_controller_restart(ctrl: BenchController, repeats: int, launch) -> dict:
    """Mid-cycle, the controller resets every parameter to -1 and (0.5 s later) asks again."""
    records: List[Dict[str, Any]] = []
    served, lost, ok = 0, 0, True
    for rep in range(repeats):
        stop_at = 1 + rep % 2  # restart while the detector waits for cube 1, then cube 2
        for _ in range(10):  # a scene with enough cubes
            cycle = ctrl.run_cycle(stop_before_cube=stop_at)
            if cycle.status not in ("done", "no_faces"):
                break
            served += 1
        if cycle.status != "abandoned":
            ok = False
            records.append({"status": cycle.status, "note": cycle.note})
            continue
        reset_at = time.monotonic()
        ctrl.reset_parameters()
        time.sleep(0.5)  # the controller restarting
        with ctrl.cond:
            still_waiting = ctrl.states[-1][1]
        rospy.loginfo("bench: controller restarted (detector state %s)", still_waiting)
        again = ctrl.run_cycle(from_idle=False)
        lost += 1
        served += again.completed
        ok = ok and again.completed and still_waiting.startswith("waiting_robot_ready")
        records.append({"restart_before_cube": stop_at, "state_after_reset": still_waiting,
                        "new_cycle": again.status, "recovery_s": None if again.cycle_ms is None
                        else round(again.started + again.cycle_ms / 1e3 - reset_at, 3),
                        "new_cycle_ms": again.cycle_ms})
    warned = first_line_matching(launch.output(), r"the controller restarted; abandoning this cycle")
    recoveries = [r["recovery_s"] for r in records if r.get("recovery_s") is not None]
    return {
        "name": f"controller restarts mid-cycle, resets the parameters to -1 (x{repeats})",
        "served": served, "lost": lost, "recovery_s": median(recoveries), "ok": ok and bool(warned),
        "restarts": records, "log_line": warned,
        "summary": ("the detector keeps waiting through the -1s, then abandons the old cycle on the new "
                    "`/takeImage` and serves it; recovery = reset → new labels, incl. a 0.5 s restart; log: "
                    + ("`" + warned.split("]: ", 1)[-1][:90] + "…`" if warned else "**no warning line**")),
    }


def drill_robot_ready_timeout(graph: RosGraph, timeout_s: float) -> dict:
    """A second detector with robot_ready_timeout on its own parameter names; RobotReady never comes."""
    names = ProtocolNames(take_image="/drill/takeImage", label="/drill/label", robot_ready="/drill/RobotReady")
    ctrl = BenchController(node="/detector_rrt", names=names)
    ctrl.reset_parameters()
    launch, ready_s = start_detector(graph, ctrl, name="detect_rrt", node_name="detector_rrt", model=MODEL,
                                     robot_ready_timeout=timeout_s, take_image_param=names.take_image,
                                     label_param=names.label, robot_ready_param=names.robot_ready)
    try:
        for _ in range(10):  # a scene with cubes (an empty one never asks for RobotReady)
            stuck = ctrl.run_cycle(ack=False, timeout=timeout_s * 3 + 10)
            if stuck.faces:
                break
        after = [ctrl.run_cycle() for _ in range(3)]
        time.sleep(0.3)
        said = first_line_matching(launch.output(), r"still not true after")
    finally:
        ctrl.close()
        launch.stop()
    gave_up = (None if stuck.protocol_ms is None or stuck.cycle_ms is None
               else (stuck.protocol_ms - stuck.cycle_ms) / 1e3)
    served = cycles_served(after)
    return {
        "name": f"`RobotReady` never comes back, robot_ready_timeout {timeout_s:g} s",
        "served": served, "lost": int(stuck.status != "done"),
        "recovery_s": None if after[0].cycle_ms is None else round(after[0].cycle_ms / 1e3, 3),
        "gave_up_after_s": None if gave_up is None else round(gave_up, 3), "stuck_status": stuck.status,
        "log_line": said, "ok": stuck.status == "abandoned" and served == len(after) and bool(said),
        "summary": (f"gave up {gave_up:.2f} s after the labels were published, then served {served}/{len(after)}; "
                    f"log: `{said.split(']: ', 1)[-1][:90]}…`" if gave_up is not None and said
                    else f"status {stuck.status}; log line: {said or 'none'}"),
    }


def cmd_soak(args) -> int:
    data = header("make soak" + ("" if args.cycles == 1000 else f" SOAK_CYCLES={args.cycles}"))
    data.update(report.model_fields(MODEL))  # the model the soak's detectors are started with
    started = time.monotonic()
    failures: List[str] = []
    with tempfile.TemporaryDirectory(prefix="cube_detect_soak_") as tmp:
        graph = RosGraph(Path(tmp), use_existing_master=args.use_running_master)
        try:
            init_rospy()
            camera = graph.camera(seed=CAMERA_SEED)
            ctrl = BenchController()
            ctrl.reset_parameters()
            rospy.wait_for_service("/get_image", timeout=60)
            launch, ready_s = start_detector(graph, ctrl, model=MODEL)
            data["node_model"] = report.repo_path(node_model(launch))
            if data["node_model"] != report.repo_path(MODEL):
                failures.append(f"the soak's detector loaded {data['node_model']}, not {report.repo_path(MODEL)}")
            pid = node_pid("/detector")
            log(f"soak: detector ready in {ready_s:.2f} s (pid {pid}); {args.cycles} cycles")
            run_cycles(ctrl, 3, pid, "warm-up", show=False)
            rss: list = []
            cycles = run_cycles(ctrl, args.cycles, pid, "soak cycles", rss, show=not args.quiet)
            summary = summarize_cycles(cycles)
            data["soak"] = summary
            data["no_hang"] = summary["completed"] == args.cycles == summary["cycles"]
            if not data["no_hang"]:
                failures.append(f"{args.cycles - summary['completed']} soak cycle(s) did not complete")
            window = max(1, min(100, len(rss) // 2))
            first = [v for v in rss[:window] if v]
            last = [v for v in rss[-window:] if v]
            if first and last:
                first_mb, last_mb = sum(first) / len(first) / 1024, sum(last) / len(last) / 1024
                growth = last_mb / first_mb - 1
                data["rss"] = {"window_cycles": window, "first_mb": round(first_mb, 2), "last_mb": round(last_mb, 2),
                               "growth": round(growth, 4), "pass": growth < 0.10,
                               "peak_mb": round((proc_status_kb(pid, "VmHWM") or 0) / 1024, 1)}
            data["wrong_cycles"] = [{"index": i, "truth": c.truth, "faces": c.faces, "handed": c.handed,
                                     "status": c.status, "note": c.note}
                                    for i, c in enumerate(cycles) if not c.correct][:50]
            log(f"soak: {summary['completed']}/{summary['cycles']} completed, {summary['correct']} right, "
                f"{summary['wrong']} wrong; RSS {data.get('rss', {}).get('first_mb')} -> "
                f"{data.get('rss', {}).get('last_mb')} MB")

            drills = []
            if "camera" in args.drills:
                log("drill: camera killed mid-run and restarted")
                d = drill_camera_killed(graph, ctrl, camera, outage_s=args.outage, after=3)
                camera = d.pop("camera")
                drills.append(d)
            if "slow" in args.drills:
                log("drill: camera answering in 2 s")
                drills.append(drill_slow_camera(ctrl, delay=2.0, count=args.slow_cycles))
            if "restart" in args.drills:
                log("drill: controller restarts mid-cycle")
                drills.append(drill_controller_restart(ctrl, args.restarts, launch))
            if "robot_ready" in args.drills:
                log("drill: RobotReady never comes back (robot_ready_timeout)")
                drills.append(drill_robot_ready_timeout(graph, timeout_s=2.0))
            for d in drills:
                log(f"drill {d['name']}: served {d['served']}, lost {d['lost']}, recovery {d['recovery_s']} s: "
                    f"{'ok' if d['ok'] else 'FAILED'}")
                if not d["ok"]:
                    failures.append(f"drill failed: {d['name']}")
            final = run_cycles(ctrl, 3, pid, "after the drills", show=False)
            alive = proc_status_kb(pid, "VmRSS") is not None  # the same process as at the start
            data["after_drills"] = {"cycles": len(final), "completed": cycles_served(final),
                                    "detector_alive_same_pid": alive}
            if cycles_served(final) != len(final) or not alive:
                failures.append("the detector does not serve any more after the drills")
            data["drills"] = drills
            ctrl.close()
        finally:
            shutdown(graph)
    data["wall_s"] = round(time.monotonic() - started, 1)
    data["load_avg"]["end"] = [round(x, 2) for x in os.getloadavg()]
    data["failures"] = failures
    write_json(args.out, data)
    log(f"wrote {args.out} ({data['wall_s'] / 60:.1f} min)")
    print(report.soak_table(data))
    if not args.no_readme:
        report.update_readme()
    for failure in failures:
        log(f"FAILED: {failure}")
    return 1 if failures else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="latency, cycle time, ready time, memory -> bench/results.json")
    b.add_argument("--cycles", type=int, default=200, help="protocol cycles timed (default 200)")
    b.add_argument("--iterations", type=int, default=300, help="frames per latency figure (default 300)")
    b.add_argument("--ready-runs", type=int, default=3, help="detect.launch starts timed (median; default 3)")
    b.add_argument("--train", action="store_true", help="also train from scratch (9 min) for minutes to mAP50 0.95")
    b.add_argument("--no-peers", action="store_true", help="skip the peer detectors (bench/peers.py)")
    b.add_argument("--model", default=str(MODEL),
                   help="the model timed, alone and in the node's cycles (default the shipped one)")
    b.add_argument("--out", type=Path, default=HERE / "results.json")
    b.add_argument("--no-readme", action="store_true", help="do not rewrite the README section")
    s = sub.add_parser("soak", help="1000 cycles and fault drills -> bench/soak.json")
    s.add_argument("--cycles", type=int, default=1000)
    s.add_argument("--drills", default="camera,slow,restart,robot_ready",
                   help="comma-separated subset of camera,slow,restart,robot_ready")
    s.add_argument("--outage", type=float, default=3.0, help="s the killed camera stays down (default 3)")
    s.add_argument("--slow-cycles", type=int, default=3)
    s.add_argument("--restarts", type=int, default=3)
    s.add_argument("--out", type=Path, default=HERE / "soak.json")
    s.add_argument("--no-readme", action="store_true")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    for p in (b, s):
        p.add_argument("--use-running-master", action="store_true",
                       help="use the master in ROS_MASTER_URI (a rostest's) instead of a roscore of its own")
    args = parser.parse_args(argv)
    if args.command == "soak":
        args.drills = [d for d in args.drills.split(",") if d]
    return cmd_bench(args) if args.command == "bench" else cmd_soak(args)


if __name__ == "__main__":
    sys.exit(main())
