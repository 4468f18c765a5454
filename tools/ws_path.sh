# The catkin workspace that holds this checkout: outside the repository (a workspace inside
# it, linked back to the repository, makes rosrun's `find -L` see every script twice).
# Override with CUBE_DETECT_WS=/path/to/ws.
cube_detect_ws_path() {
  local root="$1"
  echo "${CUBE_DETECT_WS:-${XDG_CACHE_HOME:-$HOME/.cache}/cube_detect/ws-$(printf %s "$root" | sha1sum | cut -c1-10)}"
}
