# Source me: `source tools/env.sh` puts the venv and the catkin workspace in this shell.
_cube_detect_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
# shellcheck source=ws_path.sh
source "$_cube_detect_root/tools/ws_path.sh"
export PATH="$_cube_detect_root/.venv/bin:/usr/bin:$PATH"
# shellcheck disable=SC1091
source "$(cube_detect_ws_path "$_cube_detect_root")/devel/setup.bash"
export ROS_PYTHON_VERSION=3
unset _cube_detect_root
