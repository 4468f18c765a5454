#!/usr/bin/env python3
"""rostest: the `make bench` / `make soak` code paths on a tiny count, so that they cannot rot.

Runs bench/run_bench.py's pieces on this test's roscore (its own detect.launch, simulated
camera and bench controller, all stopped afterwards): 5 timed cycles and one timed start,
3 more at each swept safety-net rate, 5 soak cycles plus the controller-restart drill, the
latency job on 5 frames, and the README section written between its markers. Asserts structure and that every cycle
completed, never a timing or a goal.
"""

import hashlib
import json
import shutil
import tempfile
import unittest
from pathlib import Path

import rospkg
import rospy
import rostest

from bench import report, run_bench  # bench.test puts the package root on PYTHONPATH

ROOT = Path(rospkg.RosPack().get_path("cube_detect"))

MODEL = ROOT / "models" / "cube_detect.tflite"


class BenchSmokeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rospy.init_node("check_bench")
        cls.tmp = Path(tempfile.mkdtemp(prefix="cube_detect_bench_test_"))
        cls.results = {}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_1_bench_cycles_ready_and_memory(self):
        model = self.tmp / "copy.tflite"  # bench --model M: the node's cycles run M, not the shipped model
        shutil.copy(MODEL, model)
        shutil.copy(MODEL.with_suffix(".json"), model.with_suffix(".json"))
        shutil.copy(MODEL.with_name("cube_detect_reader.tflite"), self.tmp)  # the face reader the sidecar names
        out = run_bench.measure_ros(cycles=5, ready_runs=1, log_dir=self.tmp / "bench", running_master=True,
                                    sweep_cycles=3, model=model)
        # the timed start, then each swept rate (a model outside the repository keeps its whole path)
        self.assertEqual(out["node_models"], [str(model.resolve())] * 3)
        self.assertEqual(out["cycles"]["cycles"], 5)
        self.assertEqual(out["cycles"]["completed"], 5, out["cycles"])
        self.assertEqual(out["cycle_ms"]["n"], 5)
        self.assertEqual(set(out["cycle_ms"]), {"p50", "p95", "max", "n"})
        self.assertEqual(set(out["cycle_breakdown_ms"]), {"seen", "camera", "inference"})
        self.assertEqual(len(out["ready_s_runs"]), 1)
        self.assertGreater(out["ready_s"], 0)
        self.assertGreater(out["node_peak_rss_mb"], 0)
        self.assertGreater(out["master_push_ms"]["n"], 40)  # the master pushed (nearly) every probe
        self.assertEqual(set(out["cycle_ms_by_rate"]), {"20", "1", "50"})  # the default, then each swept rate
        self.assertEqual([out["cycle_ms_by_rate"][r]["cycle"]["n"] for r in ("1", "50")], [3, 3])
        self.assertGreater(out["master_getparam"]["master_cpu_us"], 0)  # the master's own CPU time was read
        type(self).results.update(out)

    def test_2_latency_job(self):
        lat = run_bench.measure_latency(MODEL, iterations=5)
        self.assertEqual(lat["int8_cpu"]["n"], 5)
        self.assertGreater(lat["int8_cpu"]["p50"], 0)
        for key in ("float_tflite", "float_tf"):  # null when models/cube_detect.keras is absent
            self.assertIn(key, lat)
            if lat[key] is not None:
                self.assertGreater(lat[key]["n"], 0)
        type(self).results["latency_ms"] = lat

    def test_3_soak_and_one_drill(self):
        out = self.tmp / "soak.json"
        code = run_bench.main(["soak", "--cycles", "5", "--drills", "restart", "--restarts", "1",
                               "--out", str(out), "--no-readme", "--quiet", "--use-running-master"])
        data = json.loads(out.read_text())
        self.assertEqual(code, 0, data.get("failures"))
        self.assertEqual((data["soak"]["cycles"], data["soak"]["completed"]), (5, 5))
        self.assertEqual(data["soak"]["correct"] + data["soak"]["wrong"], 5)
        self.assertTrue(data["no_hang"])
        # the detector loaded the model hashed, named as the repository names it (the workspace's
        # package is a symlink to the checkout, tools/setup.sh)
        self.assertEqual(data["node_model"], "models/cube_detect.tflite")
        self.assertEqual(data["model_sha256"], hashlib.sha256(MODEL.read_bytes()).hexdigest())
        self.assertEqual(set(data["rss"]), {"window_cycles", "first_mb", "last_mb", "growth", "pass", "peak_mb"})
        (drill,) = data["drills"]
        self.assertTrue(drill["ok"], drill)
        self.assertEqual(drill["lost"], 1)  # the cycle the restarted controller abandoned
        self.assertGreaterEqual(drill["served"], 1)
        self.assertIn("the controller restarted", drill["log_line"])
        self.assertEqual(data["after_drills"]["completed"], data["after_drills"]["cycles"])
        type(self).soak = data

    def test_4_readme_section_between_markers(self):
        results = dict(run_bench.header("test"), **report.model_fields(MODEL), **type(self).results)
        results["goals"] = report.goals(results)
        self.assertEqual([g["key"] for g in results["goals"]],
                         ["latency_ms.int8_cpu.p50", "cycle_ms.p95", "ready_s", "model_total_bytes"])
        (self.tmp / "results.json").write_text(json.dumps(results))
        (self.tmp / "soak.json").write_text(json.dumps(getattr(type(self), "soak", {})))
        readme = self.tmp / "README.md"
        readme.write_text(f"# x\n\nbefore\n\n{report.START}\nold\n{report.END}\n\nafter\n")
        self.assertTrue(report.update_readme(readme, self.tmp / "results.json", self.tmp / "soak.json"))
        text = readme.read_text()
        self.assertTrue(text.startswith("# x\n\nbefore\n\n" + report.START))
        self.assertTrue(text.endswith(report.END + "\n\nafter\n"))
        self.assertNotIn("\nold\n", text)
        self.assertIn("| int8 CPU latency p50 |", text)
        self.assertIn("| the same cycle with `rate:=1` (the master's push alone, in practice) |", text)
        self.assertIn("| one poll (a `getParam` of a bool, as of `/takeImage`) |", text)
        self.assertIn("| drill |", text)


if __name__ == "__main__":
    rostest.rosrun("cube_detect", "check_bench", BenchSmokeTest)
