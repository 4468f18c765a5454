"""Goals, Markdown tables and the README's "Performance" section from bench/results.json and
bench/soak.json.

python bench/report.py   # rewrites README.md between <!-- bench:start --> and <!-- bench:end -->
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
SOAK = ROOT / "bench" / "soak.json"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

MB = 1_000_000
#: The peer detectors of bench/peers.py (their rows' texts come with their figures in results.json).
PEERS = ("ssd_mobilenet_v2_300_int8", "faster_rcnn_resnet50_640_float")


def get(data: dict, dotted: str):
    value = data
    for key in dotted.split("."):
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return value


def goals(results: dict) -> List[dict]:
    """Each goal: name, target text, value, pass (None when not measured)."""
    spec = [
        ("int8 CPU latency p50", "latency_ms.int8_cpu.p50", "<=", 10.0, "≤ 10 ms"),
        # Decided: the default 20 Hz safety-net poll stays (the master's push, 0-100 ms, is the
        # floor; rate:=50 is the documented faster option): a 20 Hz poll alone puts the p95 near
        # 60 ms, so the goal is 65 ms, to measure rather than flap.
        ("cycle p95 (takeImage → labels), default 20 Hz poll", "cycle_ms.p95", "<=", 65.0, "≤ 65 ms"),
        ("ready (launch → ~ready)", "ready_s", "<=", 2.0, "≤ 2 s"),
        # The detector and its face reader, when it has one: what the robot loads.
        ("model size (with its face reader)", "model_total_bytes", "<=", MB, "≤ 1 MB"),
    ]
    out = []
    for name, key, op, target, text in spec:
        value = get(results, key)
        ok = None if value is None else (value <= target if op == "<=" else value >= target)
        out.append({"goal": name, "key": key, "target": text, "value": value, "pass": ok})
    return out


def verdict(ok: Optional[bool]) -> str:
    return "not measured" if ok is None else ("pass" if ok else "**FAIL**")


def fmt_ms(stats: Optional[dict]) -> str:
    if not stats or not stats.get("n"):
        return "—"
    return f"{stats['p50']:.1f} / {stats['p95']:.1f} ms"


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "os": os_name, "python": platform.python_version()}


def machine_line(data: dict) -> str:
    m = data.get("machine", {})
    load = data.get("load_avg", {})
    start = load.get("start") or [None]
    end = load.get("end") or [None]
    load_txt = (f"; 1-min load average {start[0]:.1f} at start, {end[0]:.1f} at end"
                if start[0] is not None and end[0] is not None else "")
    return (f"{data.get('date', '?')[:16].replace('T', ' ')} UTC, {m.get('cpu', '?')}, "
            f"{m.get('cores', '?')} cores, {m.get('os', '')}{load_txt}")


def repo_path(path: Optional[Union[str, Path]]) -> Optional[str]:
    """An absolute path as the repository names it (relative to its root), else whole; None stays None.
    The committed JSON files then name no machine's checkout."""
    if path is None:
        return None
    p = Path(path)
    return str(p.relative_to(ROOT) if p.is_absolute() and p.is_relative_to(ROOT) else p)


def model_fields(model: Path) -> dict:
    """Which model a run's figures are of: its path (``repo_path``), size and sha256 (the weights,
    not the name), and its face reader's when its sidecar names one (``model_total_bytes``: both).
    ``model``: an absolute path."""
    size = model.stat().st_size
    fields: Dict[str, Any] = {"model": repo_path(model), "model_bytes": size,
                              "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
    sidecar = model.with_suffix(".json")
    reader = json.loads(sidecar.read_text()).get("reader") if sidecar.is_file() else None
    if reader:
        path = model.with_name(reader["file"])
        fields.update(reader_bytes=path.stat().st_size, reader_sha256=hashlib.sha256(path.read_bytes()).hexdigest())
        size += path.stat().st_size
    fields["model_total_bytes"] = size
    return fields


def model_line(r: dict) -> str:
    """"; model PATH (sha256 0123abcd)" for a run's header, from the fields run_bench writes."""
    if not r.get("model"):
        return ""
    sha, reader = r.get("model_sha256"), r.get("reader_sha256")
    return (f"; model `{r['model']}`" + (f" (sha256 {sha[:8]}…" if sha else "")
            + (f"; its face reader {reader[:8]}…" if sha and reader else "") + (")" if sha else ""))


def bench_table(r: dict) -> str:
    lat = r.get("latency_ms", {})
    alone = lat.get("int8_cpu_without_reader")  # a model with a face reader: the detector alone too
    lines = [
        f"**`make bench`** ({machine_line(r)}; `{r.get('command', 'make bench')}`{model_line(r)})",
        "",
        "| figure | p50 / p95 | notes |",
        "| --- | --- | --- |",
        f"| int8 model{' + its face reader' if alone else ''}, CPU, 1 thread, one 640×480 frame "
        f"(pre + model + {'reading + ' if alone else ''}post) | {fmt_ms(lat.get('int8_cpu'))} "
        f"| {lat.get('int8_runtime', '')}, n = {get(lat, 'int8_cpu.n') or 0} |",
    ]
    if alone:
        both, only = get(lat, "int8_cpu.p50"), get(lat, "int8_cpu_without_reader.p50")
        lines.append(f"| … the same detector without its reader, same frames | {fmt_ms(alone)} | with the reader: "
                     f"{both / only:.2f}× the detector alone (p50: +{both - only:.2f} ms) |")
    lines += [
        f"| same network (the detector), float TFLite | {fmt_ms(lat.get('float_tflite'))} "
        f"| {lat.get('int8_runtime', '')} |",
        f"| same network, float TensorFlow (tf.function) | {fmt_ms(lat.get('float_tf'))} | TF, 1 thread |",
        f"| cross-check: int8 model on TF's own tf.lite.Interpreter | {fmt_ms(lat.get('int8_tf_interpreter'))} "
        f"| {get(lat, 'int8_tf_interpreter.runtime') or ''} |",
    ]
    for peer in PEERS:
        stats = lat.get(peer) or {}
        ratio = get(r, f"peer_speedup.{peer}")
        lines.append(f"| peer `{peer}`: {stats.get('description', 'not measured')} | {fmt_ms(stats)} "
                     f"| n = {stats.get('n', 0)}; ours is {'—' if ratio is None else f'{ratio:,.1f}×'} faster "
                     f"(medians) |")
    rate = r.get("detector_rate_hz", 20.0)
    lines += [
        f"| cycle: `/takeImage` true → sorted labels on `~faces` | {fmt_ms(r.get('cycle_ms'))} "
        f"| {get(r, 'cycle_ms.n') or 0} cycles, simulated robot, real roscore |",
        f"| … of which: until the detector notices `/takeImage` | {fmt_ms(get(r, 'cycle_breakdown_ms.seen'))} "
        f"| the master's push or the `rate` {rate:g} Hz safety-net poll, whichever first (`~state` → `detecting`) |",
        f"| … for comparison: the master's push (`setParam` → `paramUpdate` at a subscriber) "
        f"| {fmt_ms(r.get('master_push_ms'))} | rosmaster's notification threads look for work every 0.1 s; "
        f"n = {get(r, 'master_push_ms.n') or 0} |",
        f"| … of which: until the camera's image stamp | {fmt_ms(get(r, 'cycle_breakdown_ms.camera'))} "
        f"| noticing + camera service call (kept connection; the sim has its next scene ready, as a camera) |",
        f"| … of which: the node's inference (pre + model + {'reading + ' if alone else ''}post) "
        f"| {fmt_ms(get(r, 'cycle_breakdown_ms.inference'))} | from `~faces` |",
    ]
    for key, sweep in sorted((r.get("cycle_ms_by_rate") or {}).items(), key=lambda kv: float(kv[0])):
        if float(key) == rate:
            continue
        what = "the master's push alone, in practice" if float(key) <= 1 else "a fast poll"
        lines.append(f"| the same cycle with `rate:={key}` ({what}) | {fmt_ms(sweep.get('cycle'))} "
                     f"| until noticed: {fmt_ms(sweep.get('seen'))}; n = {get(sweep, 'cycle.n') or 0} |")
    poll = r.get("master_getparam") or {}
    if poll.get("wall_us") is not None:
        cpu = poll.get("master_cpu_us")
        load = ("" if cpu is None else f"; {cpu:.0f} µs of the master's CPU, so a 50 Hz poll costs it "
                f"{cpu * 50 / 1e4:.1f} % of a core")
        lines.append(f"| one poll (a `getParam` of a bool, as of `/takeImage`) | {poll['wall_us'] / 1e3:.2f} ms "
                     f"| at the caller, mean of {poll.get('calls', 0)}{load} |")
    lines += [
        f"| full protocol cycle (every cube handed over, arm answering at once) | {fmt_ms(r.get('protocol_cycle_ms'))} "
        f"| mean {get(r, 'cubes_per_cycle') or 0:.1f} cubes per cycle |",
        "",
        "| figure | value | goal | |",
        "| --- | --- | --- | --- |",
    ]
    values = {
        "latency_ms.int8_cpu.p50": lambda v: f"{v:.2f} ms",
        "cycle_ms.p95": lambda v: f"{v:.1f} ms",
        "ready_s": lambda v: f"{v:.2f} s",
        "model_total_bytes": lambda v: f"{v:,} bytes",
        "model_bytes": lambda v: f"{v:,} bytes",  # runs before the face reader's size counted
    }
    for g in r.get("goals", goals(r)):
        value = "—" if g["value"] is None else values[g["key"]](g["value"])
        lines.append(f"| {g['goal']} | {value} | {g['target']} | {verdict(g['pass'])} |")
    rss = r.get("node_peak_rss_mb")
    lines.append(f"| detector node peak RSS (VmHWM) | {rss:.0f} MB | — | |" if rss
                 else "| detector node peak RSS | — | — | |")
    for peer in PEERS:
        ratio = get(r, f"peer_speedup.{peer}")
        if ratio is not None:
            bound = "; at least: the peer's figure is a lower bound" if peer == PEERS[1] else ""
            lines.append(f"| speed-up vs `{peer}` (peer median / ours{bound}) | {ratio:,.1f}× | — | |")
    for key, name in (("speedup_int8_vs_float_tf", "float TF"), ("speedup_int8_vs_float_tflite", "float TFLite")):
        if r.get(key) is not None:
            lines.append(f"| int8 speed-up vs the same network in {name} (medians{', detector alone' if alone else ''})"
                         f" | {r[key]:.2f}× | — | |")
    train = r.get("train")
    if train:
        minutes = train.get("minutes_to_mAP50_0.95")
        when = f"; `make bench TRAIN=1` of {train['date'][:10]}" if train.get("carried_over") else ""
        lines.append(f"| training from scratch to mAP@0.5 ≥ 0.95 (`TRAIN=1`) | "
                     f"{'not reached' if minutes is None else f'{minutes:.1f} min'} | — | "
                     f"best val mAP@0.5 {train.get('val_mAP50', 0):.3f} in {train.get('train_minutes', 0):.1f} min"
                     f"{when} |")
    for note in r.get("notes", []):
        lines.append(f"\n- {note}")
    return "\n".join(lines)


def soak_table(s: dict) -> str:
    main = s.get("soak", {})
    rss = s.get("rss", {})
    lines = [
        f"**`make soak`** ({machine_line(s)}; `{s.get('command', 'make soak')}`{model_line(s)})",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| protocol cycles run / completed (no hang) | {main.get('cycles', 0)} / {main.get('completed', 0)} "
        f"({'pass' if s.get('no_hang') else '**FAIL**'}) |",
        f"| labels right / wrong vs the camera's truth | {main.get('correct', 0)} / {main.get('wrong', 0)} "
        f"({100.0 * main.get('correct', 0) / max(main.get('cycles', 0), 1):.1f} % exact sequences) |",
        f"| cycle `/takeImage` → `~faces` p50 / p95 | {fmt_ms(main.get('cycle_ms'))} |",
        f"| full protocol cycle p50 / p95 | {fmt_ms(main.get('protocol_ms'))} |",
        f"| detector RSS, first 100 → last 100 cycles (mean) | "
        f"{rss.get('first_mb', 0):.1f} → {rss.get('last_mb', 0):.1f} MB "
        f"({100.0 * rss.get('growth', 0):+.1f} %, goal < 10 %: {verdict(rss.get('pass'))}) |",
        f"| soak wall time | {s.get('wall_s', 0) / 60:.1f} min |",
        "",
        "| drill | cycles served | cycles lost | recovery | what happened |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in s.get("drills", []):
        rec = d.get("recovery_s")
        lines.append(f"| {d['name']} | {d.get('served', 0)} | {d.get('lost', 0)} | "
                     f"{'—' if rec is None else f'{rec:.2f} s'} | {d.get('summary', '')} |")
    return "\n".join(lines)


def section(results: Optional[dict], soak: Optional[dict]) -> str:
    parts = [START,
             "<!-- generated by bench/report.py from bench/results.json and bench/soak.json: "
             "`make bench`, `make soak` rewrite it -->"]
    if results:
        parts += ["", bench_table(results)]
    if soak:
        parts += ["", soak_table(soak)]
    if not results and not soak:
        parts += ["", "No figures yet: run `make bench` and `make soak`."]
    parts += ["", END]
    return "\n".join(parts)


def update_readme(readme: Path = README, results_path: Path = RESULTS, soak_path: Path = SOAK) -> bool:
    """Rewrite the README's section between the markers; False when the markers are missing."""
    results = json.loads(results_path.read_text()) if results_path.is_file() else None
    soak = json.loads(soak_path.read_text()) if soak_path.is_file() else None
    text = readme.read_text()
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        print(f"bench: {readme} has no {START} ... {END} markers: section not written", file=sys.stderr)
        return False
    new = text[:start] + section(results, soak) + text[end + len(END):]
    if new != text:
        tmp = readme.with_name(f".{readme.name}.tmp")
        tmp.write_text(new)
        tmp.replace(readme)
    return True


if __name__ == "__main__":
    sys.exit(0 if update_readme() else 1)
