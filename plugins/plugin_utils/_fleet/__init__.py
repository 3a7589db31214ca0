# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side helpers of fleet runs: the RunPod inventory and the fleet summary.

PRIVATE to this collection: the leading underscore says so (the community.crypto convention).
Nothing here is a public API; names and shapes may change in any release.

* ``runpod_api``     -- RunPod's GraphQL API (the key in a header only, bounded requests);
* ``runpod_hosts``   -- a pod as an inventory host: SSH endpoint, filters, names, allowed env;
* ``fleet_outcomes`` -- each pod's outcome of a fleet run, and the retry file.
"""
