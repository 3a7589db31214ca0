#!/usr/bin/env bash
# Assemble a podman/docker build context for examples/Containerfile from this checkout.
#
#   examples/build-context.sh DEST [--vars FILE] [--wheels DIR] [--source PATH]...
#
#   DEST           directory to create (must not exist, or be empty)
#   --vars FILE    variables for playbooks/bake.yml (default examples/bake-vars.yml)
#   --wheels DIR   copy the *.whl files of DIR into the context, so the image installs
#                  ansible-core and boto3 offline (e.g. behind a TLS-intercepting proxy);
#                  make one with: pip download -d DIR 'ansible-core>=2.19,<2.20' 'boto3>=1.36'
#   --source PATH  copy PATH (a local git repo, a workflows directory) into sources/; it is
#                  /opt/aiclipse/sources/<name> in the build, which bake vars can point at
#
# The collection is copied as git sees it (tracked and not-ignored files, uncommitted edits
# included), without tests and molecule scenarios, which a pod does not need.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
dest=$1
shift
vars=$here/examples/bake-vars.yml
wheels=""
sources=()
while [ $# -gt 0 ]; do
  case "$1" in
    --vars) vars=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    --source) sources+=("$2"); shift 2 ;;
    *) usage ;;
  esac
done

if [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
  echo "build-context.sh: $dest exists and is not empty" >&2
  exit 1
fi
mkdir -p "$dest/aiclipse" "$dest/wheels" "$dest/sources"

(cd "$here" && git ls-files -co --exclude-standard -z \
  | grep -zvE '^(tests|molecule|bench|\.github)/' \
  | xargs -0 cp --parents -P -t "$dest/aiclipse")
# The collections/ symlink makes aiclipse.comfyui.* resolve from the copy, as from a clone.
[ -L "$dest/aiclipse/collections/ansible_collections/aiclipse/comfyui" ] || {
  echo "build-context.sh: collections/ansible_collections/aiclipse/comfyui symlink missing" >&2
  exit 1
}
cp "$here/examples/Containerfile" "$dest/Containerfile"
cp "$vars" "$dest/bake-vars.yml"
if [ -n "$wheels" ]; then
  cp "$wheels"/*.whl "$dest/wheels/"
fi
for source in "${sources[@]}"; do
  cp -a "$source" "$dest/sources/"
done
# COPY needs these directories to exist even when empty.
touch "$dest/wheels/.keep" "$dest/sources/.keep"
echo "build-context.sh: context ready in $dest"
