"""The ROS shell: the nodes, importable (scripts/ holds their launchers).

Only scripts/, the rostest checkers and the bench import this package; the library around it
(every other ``cube_detect`` module) never does, and stays importable without rospy.
``settings`` is rospy-free (the unit tests read it); the other modules import rospy.
"""
