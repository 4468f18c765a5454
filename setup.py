# Used by catkin_python_setup() only: do not run it by hand (see README).
from catkin_pkg.python_setup import generate_distutils_setup
from setuptools import setup

setup(**generate_distutils_setup(packages=["cube_detect", "cube_detect.ros", "cube_detect.synth"],
                                 package_dir={"": "src"}, package_data={"cube_detect": ["review_static/*"]}))
