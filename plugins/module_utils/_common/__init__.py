# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers every other package of the collection shares.

PRIVATE to this collection: the leading underscore says so (the community.crypto convention).
Nothing here is a public API; names and shapes may change in any release.

* ``files``      -- the one atomic file writer (temporary file, fsync, mode and owner, rename,
                    folder fsync), sha256 of a file, the sha256 pattern;
* ``manifest_lines`` -- the line reader under every pipe-format manifest (models, custom nodes,
                    the registry's node map) and the one ManifestError they raise;
* ``printable``  -- results ansible can carry: bytes that are not UTF-8 shown as ``\\xNN``.
"""
