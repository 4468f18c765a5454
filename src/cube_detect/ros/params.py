"""The protocol's parameter store on the ROS parameter server."""

from __future__ import annotations

from typing import Any

import rospy


class RosParamStore:
    """``cube_detect.protocol.ParamStore`` over rospy: get_param / set_param."""

    @staticmethod
    def get(name: str, default: Any = None) -> Any:
        return rospy.get_param(name, default)

    @staticmethod
    def set(name: str, value: Any) -> None:
        rospy.set_param(name, value)
