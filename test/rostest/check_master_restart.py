#!/usr/bin/env python3
"""rostest: the detector and the capture node survive a restart of the ROS master (issue 15, 2).

Everything runs on a roscore of this test's own (a free port; the rostest's master only
collects the result, and this process is no node of either): the simulated camera, then
detect.launch and capture.launch through roslaunch, with non-default settings (a handshake
name, a trigger parameter) that only roslaunch sets. One protocol cycle and one capture; then
roscore is stopped (Ctrl-C) and started again on the same port, as students do. Within
seconds both nodes are registered again on the new master (the same processes: they restart
in place), with their settings, each having logged one line saying why; a cycle and a capture
work again. The simulated camera is restarted by hand (rospy nodes that are not ours stay
zombies: the README says so).
"""

import os
import shutil
import tempfile
import time
import unittest
import xmlrpc.client
from pathlib import Path

import rosgraph
import rospy
import rostest
from roslib.packages import find_node

from bench.procs import Process, free_port
from cube_detect.arm import ArmController
from cube_detect.paramstore import ProtocolNames, wait_for
from cube_detect.protocol import DONE
from cube_detect.srv import DetectCubes

HANDSHAKE = "/cell/robotReady"
TRIGGER = "/cell/snap"
RESTART_LINE = "was restarted (it no longer knows this node): restarting this node in place"


class MasterStore:
    """The protocol's ParamStore on the private master (``rosgraph.Master``: no node needed)."""

    def __init__(self, uri):
        self.master = rosgraph.Master("/check_master_restart", master_uri=uri)

    def get(self, name, default=None):
        try:
            return self.master.getParam(name)
        except rosgraph.MasterError:
            return default

    def set(self, name, value):
        self.master.setParam(name, value)


class MasterRestartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="cube_detect_master_restart_"))
        cls.dataset = cls.tmp / "dataset"
        port = free_port()
        cls.uri = f"http://127.0.0.1:{port}/"
        os.environ["ROS_MASTER_URI"] = cls.uri  # this process's service calls go there too
        cls.env = dict(os.environ, ROS_LOG_DIR=str(cls.tmp / "log"), PYTHONUNBUFFERED="1")
        cls.procs = {}
        cls.port = port
        cls.start_master()
        cls.start_camera()
        cls.start("detector", ["roslaunch", "cube_detect", "detect.launch", f"robot_ready_param:={HANDSHAKE}",
                               "camera_timeout:=1", "camera_retries:=0"])
        cls.start("capture", ["roslaunch", "cube_detect", "capture.launch", f"dataset:={cls.dataset}",
                              f"trigger_param:={TRIGGER}", "preview:=false", "annotate:=false"])
        cls.wait_registered(90)

    @classmethod
    def tearDownClass(cls):
        for name in ("capture", "detector", "sim_camera", "roscore"):
            if name in cls.procs:
                cls.procs[name].stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def start(cls, name, args):
        cls.procs[name] = Process(name, args, cls.tmp, env=cls.env)

    @classmethod
    def start_master(cls):
        cls.start("roscore", ["roscore", "-p", str(cls.port)])
        master = rosgraph.Master("/check_master_restart", master_uri=cls.uri)
        wait_for(lambda: cls._answers(master), 30, f"roscore on port {cls.port}", period=0.1)

    @staticmethod
    def _answers(master):
        try:
            master.getPid()
            return True
        except Exception:  # not up yet
            return False

    @classmethod
    def start_camera(cls):
        executable = find_node("cube_detect", "sim_camera")[0]
        cls.start("sim_camera", [executable, "__name:=sim_camera", "_seed:=100"])

    @classmethod
    def master(cls):
        return rosgraph.Master("/check_master_restart", master_uri=cls.uri)

    @classmethod
    def registered(cls):
        """Whether both nodes' services (and the camera's) are registered on the master now."""
        try:
            _, _, services = cls.master().getSystemState()
        except Exception:  # master restarting
            return False
        names = {name for name, _ in services}
        return {"/detector/detect", "/capture/capture", "/get_image"} <= names

    @classmethod
    def wait_registered(cls, timeout):
        try:
            wait_for(cls.registered, timeout, "/detector/detect, /capture/capture and /get_image", period=0.2)
        except Exception:
            raise AssertionError("\n".join(p.output()[-3000:] for p in cls.procs.values())) from None

    def node_pid(self, node):
        uri = self.master().lookupNode(node)
        code, _, pid = xmlrpc.client.ServerProxy(uri).getPid("/check_master_restart")
        self.assertEqual(code, 1)
        return pid

    def cycle(self):
        """One protocol cycle on the handshake name only roslaunch knows; labels == ~detect's."""
        store = MasterStore(self.uri)
        store.set("/sim_camera/hold", False)
        answer = rospy.ServiceProxy("/detector/detect", DetectCubes)()  # a new scene: what is in it
        self.assertTrue(answer.success, answer.message)
        self.assertTrue(answer.ids, "the scene has cubes")
        store.set("/sim_camera/hold", True)  # the protocol's cycle gets the same frame
        try:
            arm = ArmController(store, names=ProtocolNames(robot_ready=HANDSHAKE), timeout=30)
            arm.reset()
            cycle = arm.run_cycle(lambda: len(answer.ids))
        finally:
            store.set("/sim_camera/hold", False)
        self.assertEqual((cycle.status, cycle.labels), (DONE, list(answer.ids)), self.logs())
        self.assertIs(store.get(HANDSHAKE), True)

    def capture(self):
        store = MasterStore(self.uri)
        before = store.get("/capture/last_saved", "")
        store.set(TRIGGER, True)
        wait_for(lambda: store.get(TRIGGER) is False, 30, f"{TRIGGER} reset (image saved)")
        saved = store.get("/capture/last_saved")
        self.assertNotEqual(saved, before)
        self.assertTrue(Path(saved).is_file(), saved)
        self.assertEqual(Path(saved).parent.parent, self.dataset)

    def logs(self):
        return "\n".join(f"--- {p.name}\n{p.output()[-4000:]}" for p in self.procs.values())

    def test_nodes_register_again_after_roscore_restarts(self):
        self.cycle()
        self.capture()
        pids = {node: self.node_pid(node) for node in ("/detector", "/capture")}

        self.procs.pop("roscore").stop()  # Ctrl-C on roscore; then a new one on the same port
        time.sleep(2.0)  # the nodes notice the master is gone (one line each)
        self.start_master()
        self.procs.pop("sim_camera").stop()  # our simulated camera is a plain rospy node: restart it
        self.start_camera()
        started = time.monotonic()
        self.wait_registered(60)
        recovery = time.monotonic() - started
        self.assertLess(recovery, 30, self.logs())

        # The same processes, restarted in place, with the settings roslaunch gave them.
        self.assertEqual({node: self.node_pid(node) for node in pids}, pids)
        store = MasterStore(self.uri)
        self.assertEqual(store.get("/detector/robot_ready_param"), HANDSHAKE)
        self.assertEqual(store.get("/capture/dataset"), str(self.dataset))
        self.assertEqual(store.get("/capture/trigger_param"), TRIGGER)
        for name in ("detector", "capture"):
            output = self.procs[name].output()
            lines = [line for line in output.splitlines() if RESTART_LINE in line]
            self.assertEqual(len(lines), 1, output[-4000:])
            self.assertIn(f"{name}: the ROS master at {self.uri} {RESTART_LINE}", lines[0])
            self.assertNotIn("Traceback", output)
        # ... and they work.
        self.cycle()
        self.capture()


if __name__ == "__main__":
    rostest.rosrun("cube_detect", "check_master_restart", MasterRestartTest)
