#!/usr/bin/env python3
"""rostest: capture_node saves a labelled data set from the simulated camera.

Triggers (service, parameter, timer), numbering across splits and restarts, pre-annotation
against the served scene's truth, and nothing saved for an empty image or a failing camera.
Tests run in name order (test_1_..., test_2_...): numbers continue from one to the next.
"""

import os
import shutil
import subprocess
import time
import unittest
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import rospy
import rostest
from std_srvs.srv import Trigger

from bench.procs import ProcessOutput, free_port
from cube_detect.dataset import numbers_in, split_for
from cube_detect.paramstore import WaitTimeout, wait_for
from cube_detect.simulation import sorted_labels
from cube_detect.voc import read_voc

TRIGGER_PARAM = "/capture_test/take"



class CaptureNodeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rospy.init_node("check_capture")
        cls.dataset = Path(rospy.get_param("~dataset"))
        # Already there before the first capture, as after an earlier session: numbering continues.
        (cls.dataset / "test").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(cls.dataset / "test" / "image007.png"), np.zeros((8, 8, 3), np.uint8))
        rospy.wait_for_service("/get_image", timeout=60.0)
        rospy.wait_for_service("/capture/capture", timeout=60.0)
        cls.capture = rospy.ServiceProxy("/capture/capture", Trigger)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dataset, ignore_errors=True)

    def setUp(self):
        rospy.set_param("/sim_camera/empty", False)
        rospy.set_param("/sim_camera/fail", False)

    def images(self):
        return sorted(p.relative_to(self.dataset).as_posix() for p in self.dataset.rglob("image*.png"))

    def test_1_service_capture_continues_numbering_and_pre_annotates(self):
        answer = self.capture()
        truth = rospy.get_param("/sim_camera/last_labels")
        self.assertTrue(answer.success, answer.message)
        path = Path(answer.message)
        self.assertEqual(path, self.dataset / split_for(8, 0.1) / "image008.png")
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        self.assertIn(image.shape, [(480, 640, 3), (480, 752, 3)])
        self.assertTrue(path.with_suffix(".xml").is_file(),
                        "no pre-annotation XML: is the shipped model models/cube_detect.tflite there?")
        ann = read_voc(path.with_suffix(".xml"))
        self.assertEqual((ann.filename, ann.folder, ann.path), (path.name, path.parent.name, str(path)))
        self.assertEqual((ann.width, ann.height, ann.depth), (image.shape[1], image.shape[0], 3))
        # The shipped model pre-annotated the served scene: same faces, same order.
        self.assertTrue(truth)
        self.assertEqual(sorted_labels(ann.boxes), truth)

    def test_2_parameter_trigger_captures_then_resets_it(self):
        before = numbers_in(self.dataset)
        rospy.set_param(TRIGGER_PARAM, "true")  # as `rosparam set` leaves it: a string
        wait_for(lambda: rospy.get_param(TRIGGER_PARAM) is False, 30, f"{TRIGGER_PARAM} reset to false")
        number = before[-1] + 1
        self.assertEqual(numbers_in(self.dataset), before + [number])
        path = self.dataset / split_for(number, 0.1) / f"image{number:03d}.png"
        self.assertTrue(path.is_file(), path)
        time.sleep(0.5)  # false stays false: one capture per trigger
        self.assertEqual(numbers_in(self.dataset), before + [number])

    def test_3_empty_image_saves_nothing(self):
        before = self.images()
        rospy.set_param("/sim_camera/empty", True)
        answer = self.capture()
        self.assertFalse(answer.success)
        self.assertIn("empty", answer.message)
        self.assertEqual(self.images(), before)

    def test_4_camera_failure_saves_nothing_and_capture_goes_on(self):
        before = self.images()
        rospy.set_param("/sim_camera/fail", True)
        answer = self.capture()
        self.assertFalse(answer.success)
        self.assertIn("/get_image", answer.message)
        self.assertEqual(self.images(), before)
        rospy.set_param("/sim_camera/fail", False)
        answer = self.capture()
        self.assertTrue(answer.success, answer.message)
        self.assertEqual(len(self.images()), len(before) + 1)

    def start_node(self, name, *params, offscreen_display=False):
        """A second capture node on the same data set, through capture.launch, with preview true:
        headless (no $DISPLAY: the node must not touch OpenCV's windows), or with Qt's offscreen
        platform standing in for a display (the preview loop runs, no key is ever pressed)."""
        env = dict(os.environ)
        env.pop("DISPLAY", None)
        if offscreen_display:
            env.update(DISPLAY=":0", QT_QPA_PLATFORM="offscreen")
        args = ["roslaunch", "cube_detect", "capture.launch", f"node_name:={name}", f"dataset:={self.dataset}",
                "annotate:=false", "preview:=true"] + list(params)
        return ProcessOutput(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                              text=True))

    def stop_node(self, proc):
        """SIGINT (Ctrl-C) to roslaunch, which passes it on to the node; the node's output."""
        return proc.stop(timeout=30)

    def test_5_timer_capture_and_restart_continue_numbering(self):
        before = numbers_in(self.dataset)
        proc = self.start_node("capture_timer", "interval:=0.5")
        try:
            wait_for(lambda: len(numbers_in(self.dataset)) >= len(before) + 2, 60, "two timer captures")
        except WaitTimeout as exc:
            raise AssertionError(f"{exc}\n{self.stop_node(proc)}") from None
        output = self.stop_node(proc)
        after = numbers_in(self.dataset)
        new = after[len(before):]
        self.assertEqual(after[: len(before)], before)
        self.assertEqual(new, list(range(before[-1] + 1, before[-1] + 1 + len(new))), output)
        for number in new:
            path = self.dataset / split_for(number, 0.1) / f"image{number:03d}.png"
            self.assertTrue(path.is_file(), output)
            self.assertFalse(path.with_suffix(".xml").exists(), "~annotate false writes no XML")
        self.assertIn(f"capture summary: saved {len(new)} images", output)

        self.assertNotIn("preview window open", output)

        # Restart on the same folder: the next number follows what is on disk. This one runs
        # its preview loop, which keeps calling the camera while the service captures.
        proc = self.start_node("capture_restart", offscreen_display=True)
        try:
            rospy.wait_for_service("/capture_restart/capture", timeout=60.0)
            wait_for(lambda: any("preview window" in line for line in proc.lines), 60, "the preview window")
            answer = rospy.ServiceProxy("/capture_restart/capture", Trigger)()
        finally:
            output = self.stop_node(proc)
        number = after[-1] + 1
        self.assertTrue(answer.success, answer.message)
        self.assertEqual(answer.message, str(self.dataset / split_for(number, 0.1) / f"image{number:03d}.png"))
        self.assertIn("capture summary: saved 1 image ", output)
        self.assertIn("preview window open", output)

    def test_6_a_failed_parameter_trigger_stays_true_and_says_why_until_a_capture_works(self):
        """A script sets the trigger true and waits for false: false must mean "on disk"."""
        before = self.images()
        rospy.set_param("/sim_camera/fail", True)
        rospy.set_param(TRIGGER_PARAM, True)
        error = wait_for(lambda: rospy.get_param("/capture/last_error", ""), 30, "/capture/last_error")
        self.assertIn("nothing saved: camera service /get_image", error)
        time.sleep(1.5)  # retried every second, still failing: the trigger stays true
        self.assertIs(rospy.get_param(TRIGGER_PARAM), True, "reset although nothing was saved")
        self.assertEqual(self.images(), before)
        rospy.set_param("/sim_camera/fail", False)  # the camera comes back: the pending trigger is served
        wait_for(lambda: rospy.get_param(TRIGGER_PARAM) is False, 30, f"{TRIGGER_PARAM} reset to false")
        self.assertEqual(len(self.images()), len(before) + 1)
        self.assertEqual(rospy.get_param("/capture/last_error"), "")
        saved = Path(rospy.get_param("/capture/last_saved"))
        self.assertTrue(saved.is_file(), saved)
        self.assertEqual(saved.relative_to(self.dataset).as_posix(), sorted(set(self.images()) - set(before))[0])

    def test_7_review_page_while_capturing_and_one_line_when_it_cannot_start(self):
        port = free_port()
        proc = self.start_node("capture_review", "review:=true", f"review_port:={port}", "preview:=false")
        taken = None
        try:
            url = f"http://127.0.0.1:{port}/"
            try:
                wait_for(lambda: any(f"review page {url}" in line for line in proc.lines), 60, "the review page's URL")
            except WaitTimeout as exc:
                raise AssertionError(f"{exc}\n{proc.text()}") from None
            with urllib.request.urlopen(url, timeout=10) as page:
                self.assertEqual(page.status, 200)
            # A second one on the same port: one error line, and it captures all the same.
            taken = self.start_node("capture_taken", "review:=true", f"review_port:={port}", "preview:=false")
            rospy.wait_for_service("/capture_taken/capture", timeout=60.0)
            answer = rospy.ServiceProxy("/capture_taken/capture", Trigger)()
            self.assertTrue(answer.success, answer.message)
        finally:
            output = self.stop_node(proc)
            taken_output = self.stop_node(taken) if taken is not None else ""
        errors = [line for line in taken_output.splitlines() if "review page" in line]
        self.assertEqual(len(errors), 1, taken_output)
        self.assertIn(f"capture: no review page (cannot serve the review page on 127.0.0.1:{port}", errors[0])
        self.assertIn("capturing goes on", errors[0])
        self.assertNotIn("Traceback", output + taken_output)


if __name__ == "__main__":
    rostest.rosrun("cube_detect", "check_capture", CaptureNodeTest)
