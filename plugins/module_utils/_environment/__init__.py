# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pod's settings and access for SSH sessions.

PRIVATE to this collection: the leading underscore says so (the community.crypto convention).
Nothing here is a public API; names and shapes may change in any release. The public
interfaces are the modules ``rp_env_export``, ``shell_hook`` and ``ssh_access``.

One concept a file:

* ``env_export``  -- the pod's settings as a POSIX shell file of ``export`` lines, secrets masked
                     in every result;
* ``shell_hook``  -- the one line that sources that file, first in the shell start-up files;
* ``ssh_access``  -- public keys in authorized_keys, and host keys sshd can load.
"""
